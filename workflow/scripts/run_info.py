"""The config and the software versions of this run, for the report."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.run_info import config_yaml, software_versions  # noqa: E402
from synth2real.io import atomic_write_bytes, write_csv_atomic  # noqa: E402

atomic_write_bytes(snakemake.output.config, config_yaml(snakemake.params.config).encode())
versions = software_versions(snakemake.params.envs, snakemake.input.weights)
write_csv_atomic(versions, snakemake.output.versions)
log.info("%d versions", len(versions))
