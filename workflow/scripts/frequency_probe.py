"""Low-/high-pass every shard of a split."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.probes.transform import frequency_probe, map_split  # noqa: E402

name = snakemake.wildcards.fprobe
spec = snakemake.params.probe
map_split(list(snakemake.input), snakemake.output[0], lambda i, o: frequency_probe(i, o, spec))
log.info("%s of %d shards -> %s", name, len(snakemake.input), snakemake.output[0])
