"""Fig. 7's table from the IPC evaluations."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.paper import ipc_table  # noqa: E402
from synth2real.io import write_csv_atomic  # noqa: E402

table = ipc_table(snakemake.params.entries)
write_csv_atomic(table, snakemake.output[0], float32=True)
log.info("%d rows", len(table))
