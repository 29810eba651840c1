"""Every number behind the figures as Markdown."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real.figures import paper as pf  # noqa: E402
from synth2real.figures.plots import results_markdown  # noqa: E402
from synth2real.io import atomic_output  # noqa: E402

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
    slopes=pd.read_csv(inp.slopes),
)
text = results_markdown(pf.tables_for_markdown(tables), f"Results of run `{p.run}`")
with atomic_output(snakemake.output[0]) as fh:
    fh.write(text.encode())
log.info("wrote %s", snakemake.output[0])
