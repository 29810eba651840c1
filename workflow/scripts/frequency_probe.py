"""Low-/high-pass one shard."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.probes import frequency_probe  # noqa: E402

frequency_probe(snakemake.input[0], snakemake.output[0], snakemake.params.probe)
log.info("wrote %s", snakemake.output[0])
