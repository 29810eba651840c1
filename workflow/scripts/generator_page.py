"""One generator's page: its figures (its points highlighted), its rows, its samples.

Declared inputs: this generator's results and the real baseline. Other generators' result
files are read only if they exist (grey context, see rule generator_page).
"""

import script_setup

log = script_setup.init(snakemake)

from pathlib import Path  # noqa: E402

from synth2real.figures import paper as pf  # noqa: E402
from synth2real.io import write_csv_atomic  # noqa: E402

p = snakemake.params
inp = snakemake.input
ctx = p.context
gen = snakemake.wildcards.generator


evals = pf.own_and_context(inp.evals, ctx["evals"])
own_ipc = {e["path"] for e in ctx["own_ipc"]}
ipc_entries = [e for e in ctx["ipc"] if e["path"] in own_ipc or Path(e["path"]).is_file()]
spectra = pf.read_csvs(pf.own_and_context(inp.spectra, ctx["spectra"]), ["dataset"])
tables = pf.FigureTables(
    results=pf.results_from_evals(evals, p.synthetic),
    distribution=pf.read_csvs(
        pf.own_and_context(inp.distribution, ctx["distribution"]), pf.DISTRIBUTION_COLUMNS
    ),
    registry=p.registry,
    synthetic=p.synthetic,
    probes=p.probes,
    rgb_archs=p.rgb_archs,
    reference_arch=p.reference_arch,
    clipscore=pf.read_csvs(
        pf.own_and_context(inp.clipscore, ctx["clipscore"]), pf.CLIPSCORE_COLUMNS
    ),
    ipc=pf.ipc_table(ipc_entries),
    adherence=pf.read_csvs(
        pf.own_and_context(inp.adherence, ctx["adherence"]), pf.ADHERENCE_COLUMNS
    ),
    spectra=spectra,
    slopes=pf.spectrum_slopes(spectra, tuple(p.spectra["band"])),
)
out = snakemake.output
points = pf.draw_all(tables, Path(out.accuracy_png).parent, highlight=gen, names=p.names)
rows = pf.generator_rows(tables.results, gen)
write_csv_atomic(rows, out.results, float32=True)
pf.write_page(
    out.page,
    gen,
    tables,
    figures={name: Path(out[f"{name}_png"]).name for name in p.names},
    samples=[*inp.samples, inp.samples_prompts],
    context=sorted({g for g in tables.results.generator if g not in (gen, "real")}),
)
log.info("%s: %s", gen, {name: int(pts.highlight.sum()) for name, pts in points.items()})
