"""Every figure of the paper from one set of tables, for the whole run or one generator's page.

The run's figures and a generator's page draw the same figures from the same kind of tables;
only ``highlight`` differs. Keeping one entry point (:func:`draw_all`) means a figure added
here appears in both places, and a test of it covers both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from synth2real import catalog
from synth2real.evaluate.evaluation import DISTRIBUTION_COLUMNS, summarize
from synth2real.grid import REAL

IPC_COLUMNS = ["dataset", "generator", "variant", "ipc", "arch", "top1"]
CLIPSCORE_COLUMNS = ["dataset", "clipscore"]
ADHERENCE_COLUMNS = ["dataset", "adherence", "measure"]


@dataclass
class FigureTables:
    """What the figures read. Empty frames are fine: a figure then says what is missing."""

    results: pd.DataFrame
    distribution: pd.DataFrame
    registry: Mapping[str, Mapping[str, Any]]
    synthetic: Mapping[str, tuple[str, str]]
    probes: Mapping[str, Mapping[str, Any]]
    rgb_archs: Sequence[str]
    reference_arch: str
    clipscore: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLIPSCORE_COLUMNS))
    ipc: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=IPC_COLUMNS))
    adherence: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ADHERENCE_COLUMNS))
    spectra: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["dataset", "frequency", "amplitude"])
    )
    slopes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["dataset", "alpha"]))


def read_csvs(paths: Sequence[str | os.PathLike[str]], columns: Sequence[str]) -> pd.DataFrame:
    """Concatenate CSV tables (an empty frame with ``columns`` when there are none)."""
    frames = [pd.read_csv(p) for p in paths]
    if not frames:
        return pd.DataFrame(columns=list(columns))
    return pd.concat(frames, ignore_index=True)


def run_tables(inputs: Any, params: Any) -> FigureTables:
    """The run's :class:`FigureTables` from a job's named inputs and params (Snakemake's).

    Inputs ``results``, ``distribution``, ``clipscore`` and ``ipc`` (and ``slopes`` where the
    job declares it); params ``registry``, ``synthetic``, ``probes``, ``rgb_archs`` and
    ``reference_arch``. One home for what the figures and the results Markdown both read.
    """
    slopes = getattr(inputs, "slopes", None)
    return FigureTables(
        results=pd.read_csv(inputs.results),
        distribution=pd.read_csv(inputs.distribution),
        registry=params.registry,
        synthetic=params.synthetic,
        probes=params.probes,
        rgb_archs=params.rgb_archs,
        reference_arch=params.reference_arch,
        clipscore=read_csvs(list(inputs.clipscore), CLIPSCORE_COLUMNS),
        ipc=read_csvs(list(inputs.ipc), IPC_COLUMNS),
        adherence=read_csvs(list(getattr(inputs, "adherence", [])), ADHERENCE_COLUMNS),
        **({"slopes": pd.read_csv(slopes)} if slopes else {}),
    )


def measure_name(frame: pd.DataFrame, default: str) -> str:
    """What a score table measured (its ``measure`` column, e.g. a stand-in's name), where it
    names exactly one thing; else ``default``. The axis then says what was measured."""
    names = set(frame["measure"].dropna()) if "measure" in frame else set()
    return str(names.pop()) if len(names) == 1 else default


def _on_class_names(name: str) -> str:
    """A measured score's axis name in figure ``geneval_wu``, which says which prompts it is."""
    return name if name == "geneval" else f"{name}, class-name prompts"


def geneval_scores(t: FigureTables) -> pd.DataFrame:
    """Fig. 3 (top)'s x: the measured stand-in where the run measures one, else GenEval."""
    from synth2real.figures import plots as figures

    if len(t.adherence):
        return figures.adherence_table(t.adherence, t.synthetic)
    return figures.geneval_table(t.registry)


def single_source_geneval(t: FigureTables) -> pd.DataFrame:
    """Fig. 3 (top) as the paper draws it (figure ``geneval_wu``): one score per generator,
    every score from one source. The paper takes Wu et al.'s published GenEval; a run that
    measures the stand-in takes each generator's judge adherence on its class-name prompts,
    the counterpart of a GenEval run on the benchmark's short prompts, so both of a
    generator's prompt types sit at the same x as in the paper."""
    from synth2real.figures import plots as figures

    if len(t.adherence):
        per_dataset = figures.adherence_table(t.adherence, t.synthetic)
        per_generator = per_dataset[per_dataset.prompt_type == "classname"]
        return per_generator.drop(columns="prompt_type").reset_index(drop=True)
    return figures.geneval_table(t.registry, cite=catalog.WU_GENEVAL)


def existing(paths: Sequence[str]) -> list[str]:
    """The paths that exist now: other generators' results a page draws as grey context.

    They are deliberately not declared inputs (declaring them would make one generator's page
    build every generator), so a page shows whatever of them is on disk when it is built.
    """
    return [p for p in paths if Path(p).is_file()]


def ipc_table(entries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Fig. 7's table from IPC evaluation CSVs.

    ``entries`` are ``{path, dataset, generator, variant, ipc, arch}``: the evaluation row
    itself does not know the IPC (the same script evaluates every model), the DAG does.
    """
    rows = []
    for e in entries:
        top1 = float(pd.read_csv(e["path"]).top1.iloc[0])
        rows.append({**{k: e[k] for k in IPC_COLUMNS if k != "top1"}, "top1": top1})
    frame = pd.DataFrame(rows, columns=IPC_COLUMNS)
    return frame.sort_values(["generator", "variant", "ipc"], ignore_index=True)


def results_from_evals(
    eval_tables: Sequence[str | os.PathLike[str]], synthetic: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """The full results table (as ``tables/results.csv``) from evaluation CSVs."""
    return summarize(list(dict.fromkeys(map(str, eval_tables))), synthetic)[1]


def draw_all(
    t: FigureTables,
    outdir: str | os.PathLike[str],
    highlight: str | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame]:
    """Draw ``names`` (default: every figure drawn from tables,
    :func:`synth2real.catalog.table_figures`) into ``outdir``.

    Returns each figure's plotted points (also written as ``<name>.csv``).
    """
    from synth2real.figures import plots as figures  # seaborn: not for the table jobs

    outdir = Path(outdir)
    names = list(names if names is not None else (f.name for f in catalog.table_figures()))
    display = {g: s.get("display_name", g) for g, s in t.registry.items()}
    order = [g for g in t.registry if g in {gp[0] for gp in t.synthetic.values()}]
    arch = t.reference_arch
    enabled = {p: s for p, s in t.probes.items() if s.get("enabled", True)}
    draw = {
        "accuracy": lambda stem: figures.accuracy_figure(
            t.results, order, arch, stem, display, highlight
        ),
        "release": lambda stem: figures.release_figure(
            t.results, t.registry, arch, stem, highlight
        ),
        "geneval": lambda stem: figures.alignment_figure(
            t.results,
            geneval_scores(t),
            "geneval",
            t.rgb_archs,
            stem,
            highlight,
            xlabel=measure_name(t.adherence, "geneval"),
        ),
        "geneval_wu": lambda stem: figures.alignment_figure(
            t.results,
            single_source_geneval(t),
            "geneval",
            t.rgb_archs,
            stem,
            highlight,
            xlabel=_on_class_names(measure_name(t.adherence, "geneval")),
        ),
        "clipscore": lambda stem: figures.alignment_figure(
            t.results,
            figures.clipscore_table(t.clipscore, t.synthetic),
            "clipscore",
            t.rgb_archs,
            stem,
            highlight,
            xlabel=measure_name(t.clipscore, "clipscore"),
        ),
        "probes": lambda stem: figures.probes_figure(t.results, enabled, arch, stem, highlight),
        "probe_gaps": lambda stem: figures.probe_gaps_figure(t.results, enabled, stem, highlight),
        "frequency_bands": lambda stem: figures.probes_figure(
            t.results, enabled, arch, stem, highlight, panels=("frequency",)
        ),
        "density_coverage": lambda stem: figures.density_coverage_figure(
            t.results, t.distribution[DISTRIBUTION_COLUMNS], arch, stem, highlight
        ),
        "transfer": lambda stem: figures.transfer_figure(t.results, arch, stem, highlight),
        "ipc": lambda stem: figures.ipc_figure(t.ipc, stem, highlight),
        "spectra": lambda stem: figures.spectra_highlight_figure(
            t.spectra, t.slopes, t.synthetic, stem, highlight
        ),
    }
    return {name: draw[name](outdir / name) for name in names}


def tables_for_markdown(
    t: FigureTables, generator: str | None = None
) -> list[tuple[str, pd.DataFrame]]:
    """Every number behind the figures, as (heading, table) sections.

    With ``generator``, only its rows (and the real baseline it is compared with).
    """

    def mine(frame: pd.DataFrame, col: str) -> pd.DataFrame:
        if generator is None or frame.empty:
            return frame
        return frame[frame[col].isin([generator, REAL])]

    res = t.results
    keep = ["train_dataset", "probe", "arch", "test_dataset", "direction", "top1", "top5", "n"]
    res = res[[c for c in keep if c in res.columns] + (["generator"] if "generator" in res else [])]
    s2r = mine(res[res.direction.isin(["real", "synth->real"])], "generator")
    r2s = mine(res[res.direction == "real->synth"], "generator")
    gen_of = {d: g for d, (g, _) in t.synthetic.items()}
    dist = t.distribution.copy()
    dist["generator"] = dist.dataset.map(gen_of)
    clip = t.clipscore[CLIPSCORE_COLUMNS].copy()
    clip["generator"] = clip.dataset.map(gen_of)
    gen_rows = [
        {
            "generator": g,
            "display_name": s.get("display_name", g),
            "release_date": s.get("release_date") or "–",
            "geneval": (s.get("geneval") or {}).get("score", float("nan")),
            "geneval_source": (s.get("geneval") or {}).get("source", "–"),
        }
        for g, s in t.registry.items()
        if g in set(gen_of.values())
    ]
    gens = pd.DataFrame(gen_rows, columns=["generator", "display_name", "release_date", "geneval",
                                           "geneval_source"])  # fmt: skip
    slopes = t.slopes.copy()
    slopes["generator"] = [gen_of.get(d, REAL) for d in slopes.dataset]
    return [
        ("Generators (release date, GenEval with its source)", mine(gens, "generator")),
        (
            "Synth→Real and real baseline (Fig. 1, 3, 4)",
            s2r.drop(columns="generator", errors="ignore"),
        ),
        ("Real→Synth (Fig. 6)", r2s.drop(columns="generator", errors="ignore")),
        (
            "Distribution: precision, recall, density, coverage (Fig. 5)",
            mine(dist, "generator").drop(columns="generator"),
        ),  # fmt: skip
        (
            "CLIPScore of caption datasets (Fig. 3)",
            mine(clip, "generator").drop(columns="generator"),
        ),
        ("Images per class (Fig. 7)", mine(t.ipc, "generator")),
        ("Spectrum slopes α", mine(slopes, "generator").drop(columns="generator")),
    ]


def spectrum_slopes(spectra: pd.DataFrame, band: tuple[float, float]) -> pd.DataFrame:
    """Power-law slope per dataset (as ``tables/spectra.csv``), for a page's legend."""
    from synth2real.metrics.spectra import fit_power_law

    rows = [
        {"dataset": d, "alpha": fit_power_law(f.frequency.to_numpy(), f.amplitude.to_numpy(), band)}
        for d, f in spectra.groupby("dataset", sort=False)
    ]
    return pd.DataFrame(rows, columns=["dataset", "alpha"])


def generator_rows(results: pd.DataFrame, generator: str) -> pd.DataFrame:
    """A generator's rows of the results table, with the real baseline rows beside them."""
    mine = (results.generator == generator) | (results.direction == "real")
    return results[mine].reset_index(drop=True)


def write_page(
    path: str | os.PathLike[str],
    generator: str,
    t: FigureTables,
    figures: Mapping[str, str],
    samples: Sequence[str],
    context: Sequence[str],
) -> None:
    """The page as Markdown: the generator's numbers, then its figures and sample grids.

    ``context`` names the other generators whose results were on disk (drawn grey); saying
    which makes a page built before the others finished readable for what it is.
    """
    from synth2real.figures.tables import results_markdown
    from synth2real.io import atomic_output

    spec = t.registry.get(generator, {})
    path = Path(path)
    lines = [
        f"Generator `{generator}`: {spec.get('display_name', generator)}",
        "",
        f"- release date: {spec.get('release_date') or '–'}",
        f"- other generators drawn in grey (results on disk when built): "
        f"{', '.join(context) or 'none'}",
        "",
        "Figures (this generator's points in colour):",
        "",
        *[
            f"- {catalog.BY_NAME[n].label}: ![{n}](figures/{f})" for n, f in figures.items()
        ],  # fmt: skip
        "",
        "Samples:",
        "",
        *[f"- ![{Path(s).stem}]({os.path.relpath(s, path.parent)})" for s in samples],
        "",
    ]
    text = results_markdown(tables_for_markdown(t, generator), "\n".join(lines))
    with atomic_output(path) as fh:
        fh.write(text.encode())


def own_and_context(declared: Sequence[str], context: Sequence[str]) -> list[str]:
    """A page's declared files first, then those of ``context`` that exist (each once)."""
    declared = [str(p) for p in declared]
    seen = set(declared)
    return declared + [c for c in existing(context) if c not in seen]


def table_rows(
    datasets: Sequence[str],
    registry: Mapping[str, Mapping[str, Any]],
    synthetic: Mapping[str, tuple[str, str]],
    by_generator: bool,
) -> list[tuple[str, str]]:
    """(dataset, row label) of a sample table: real first, then by release date.

    Table 1 (``by_generator``) labels rows with the generator's name; Table 2 (one generator)
    with the prompt type. Undated generators follow the dated ones in registry order.
    """
    order = list(registry)

    def key(d: str) -> tuple[str, int, str]:
        if d == REAL:
            return ("", -1, "")
        gen, ptype = synthetic[d]
        return (registry[gen].get("release_date") or "9999", order.index(gen), ptype)

    def label(d: str) -> str:
        if d == REAL:
            return REAL
        gen, ptype = synthetic[d]
        return registry[gen].get("display_name", gen) if by_generator else ptype

    return [(d, label(d)) for d in sorted(datasets, key=key)]
