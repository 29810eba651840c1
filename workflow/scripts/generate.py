"""Generate one synthetic shard."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.generate.shard import generate_dataset_shard  # noqa: E402

wc = snakemake.wildcards
params = snakemake.params
stats = generate_dataset_shard(
    spec=params.spec,
    model=snakemake.input.model,
    prompts=snakemake.input.prompts,
    config=snakemake.params.config,
    dataset=wc.synth,
    split=wc.split,
    shard=int(wc.shard),
    shard_size=params.shard_size,
    batch_size=snakemake.config["synthetic"]["batch_size"],  # runtime: batch-invariant
    out=snakemake.output[0],
    device=script_setup.device(snakemake.config),
)
log.info("generation stats: %s", stats)
