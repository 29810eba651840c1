"""Depth maps of one shard."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.depth import depth_maps, load_depth_model  # noqa: E402
from synth2real.probes import map_shard  # noqa: E402

spec = snakemake.params.probe
device = script_setup.device(snakemake.params.config)
model, processor = load_depth_model(spec["model"], device)
map_shard(
    snakemake.input[0],
    snakemake.output[0],
    lambda x: depth_maps(model, processor, x, spec.get("batch_size", 32), device),
)
log.info("wrote %s", snakemake.output[0])
