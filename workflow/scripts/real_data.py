"""Write one shard of the real dataset."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.data import real as real_data  # noqa: E402

# imagenet_root is where the images live (runtime), not a param: moving it reruns nothing.
data = script_setup.with_runtime(snakemake.params.data, snakemake.config["data"])
real_data.write_real_shard(
    data,
    split=snakemake.wildcards.split,
    shard=int(snakemake.wildcards.shard),
    n_shards=snakemake.params.n_shards,
    seed=snakemake.params.seed,
    out=snakemake.output[0],
)
log.info("wrote %s", snakemake.output[0])
