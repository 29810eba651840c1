"""Depth maps of every shard of a split."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.probes.depth import depth_maps, load_depth_model  # noqa: E402
from synth2real.probes.transform import map_shard, map_split  # noqa: E402

name = snakemake.wildcards.dprobe
spec = script_setup.with_runtime(snakemake.params.probe, snakemake.config["probes"][name])
device = script_setup.device(snakemake.config)
model, processor = load_depth_model(script_setup.weights_dir(snakemake.input.model), device)


def depth_shard(src: str, dst: str) -> None:
    map_shard(
        src, dst, lambda x: depth_maps(model, processor, x, spec.get("batch_size", 32), device)
    )


shards = list(snakemake.input.shards)
map_split(shards, snakemake.output[0], depth_shard)
log.info("depth of %d shards -> %s", len(shards), snakemake.output[0])
