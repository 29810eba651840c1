"""A nested random subset of n images per class of a train split."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.scaling.subsets import write_ipc_subset  # noqa: E402

outs = write_ipc_subset(
    list(snakemake.input),
    int(snakemake.wildcards.ipc),
    snakemake.output[0],
    snakemake.params.shard_size,
    snakemake.params.seed,
    snakemake.wildcards.dataset,
)
log.info("%d shards -> %s", len(outs), snakemake.output[0])
