"""Every number behind the figures as Markdown."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures import paper as pf  # noqa: E402
from synth2real.figures.tables import results_markdown  # noqa: E402
from synth2real.io import atomic_write_bytes  # noqa: E402

p = snakemake.params
tables = pf.run_tables(snakemake.input, p)
text = results_markdown(pf.tables_for_markdown(tables), f"Results of run `{p.run}`")
atomic_write_bytes(snakemake.output[0], text.encode())
log.info("wrote %s", snakemake.output[0])
