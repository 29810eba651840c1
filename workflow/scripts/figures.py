"""Draw the run's summary figures (every paper figure but the sample tables and spectra)."""

import script_setup

log = script_setup.init(snakemake)

from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

from synth2real.figures import paper as pf  # noqa: E402

p = snakemake.params
inp = snakemake.input
tables = pf.FigureTables(
    results=pd.read_csv(inp.results),
    distribution=pd.read_csv(inp.distribution),
    registry=p.registry,
    synthetic=p.synthetic,
    probes=p.probes,
    rgb_archs=p.rgb_archs,
    reference_arch=p.reference_arch,
    clipscore=pf.read_csvs(list(inp.clipscore), pf.CLIPSCORE_COLUMNS),
    ipc=pf.read_csvs(list(inp.ipc), pf.IPC_COLUMNS),
)
points = pf.draw_all(tables, Path(snakemake.output.accuracy_png).parent, names=p.names)
log.info("figures: %s", {name: len(pts) for name, pts in points.items()})
