"""Draw the run's summary figures (every paper figure but the sample tables and spectra)."""

import script_setup

log = script_setup.init(snakemake)

from pathlib import Path  # noqa: E402

from synth2real.figures import paper as pf  # noqa: E402

p = snakemake.params
tables = pf.run_tables(snakemake.input, p)
points = pf.draw_all(tables, Path(snakemake.output.accuracy_png).parent, names=p.names)
log.info("figures: %s", {name: len(pts) for name, pts in points.items()})
