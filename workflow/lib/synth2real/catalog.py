"""The paper's figures: one list that the rules, the drawing code and the tests all read.

Before this list the figure names lived in four places (the rules, the drawing code, its
default list and the end-to-end test), in four orders; a figure added to one of them was
silently missing from another. Here a figure is named once, with what it reproduces, where
it goes in the report, where it is drawn and when the run's grid can put a point on it.

Parse-time module: the Snakefile reads it, so it imports nothing heavy (no matplotlib).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synth2real.grid import Grid

#: The probe transforms of Fig. 4's frequency panel.
FREQUENCY_TRANSFORMS: tuple[str, ...] = ("lowpass", "highpass")


def frequency_probes(grid: Grid) -> list[str]:
    """The grid's enabled low- and high-pass probes (those Fig. 4 (right) compares)."""
    return [p for p, s in grid.probes.items() if s["transform"] in FREQUENCY_TRANSFORMS]


def always(grid: Grid) -> bool:
    """Figures every grid fills (accuracy, probes, ...: the main grid always has them)."""
    return True


def has_geneval(grid: Grid) -> bool:
    """Fig. 3 (top) needs a generator with a published GenEval score in the registry, or a
    measured stand-in (``metrics.adherence: judge``, the digits)."""
    if grid.config["metrics"].get("adherence") == "judge":
        return True
    return any(grid.registry[g].get("geneval") for g in grid.generators)


#: The GenEval source the paper cites ("as computed by Wu et al."): a registry ``geneval.cite``.
WU_GENEVAL = "Wu et al. 2025"


def has_wu_geneval(grid: Grid) -> bool:
    """Fig. 3 (top) as the paper draws it needs a generator whose GenEval is Wu et al.'s, or
    the measured stand-in on class-name prompts (one score per generator, one source)."""
    if grid.config["metrics"].get("adherence") == "judge":
        return "classname" in grid.prompt_types
    scores = (grid.registry[g].get("geneval") or {} for g in grid.generators)
    return any(s.get("cite") == WU_GENEVAL for s in scores)


def has_captions(grid: Grid) -> bool:
    """CLIPScore is measured against caption prompts, and Table 3 shows the captions: neither
    exists without caption datasets."""
    return "caption" in grid.prompt_types


def has_ipc(grid: Grid) -> bool:
    """Fig. 7 needs an images-per-class grid (``scaling.ipc``)."""
    return bool(grid.ipc_grid())


def has_frequency_probes(grid: Grid) -> bool:
    """Fig. 4 (right) needs a low- or high-pass probe."""
    return bool(frequency_probes(grid))


@dataclass(frozen=True)
class Figure:
    """One figure of the paper as the workflow draws it.

    ``name`` is the file stem under ``figures/`` (run) and ``generators/<g>/figures/`` (page),
    a public interface. ``on_run``/``on_page`` say where :func:`draw_all
    <synth2real.figures.paper.draw_all>` draws it (``on_run``: in rule ``figures``); a figure
    with neither reads more than the run's tables and has a rule of its own, named like it.
    ``category`` and ``caption`` (a file in ``workflow/report/``) place it in the report.
    ``fillable`` says whether a grid can put a point on it: every figure is drawn (an empty
    one says what is missing), but only fillable ones are listed in the report.
    """

    name: str
    paper: str
    title: str
    category: str
    caption: str
    fillable: Callable[[Grid], bool] = always
    on_run: bool = True
    on_page: bool = True

    @property
    def label(self) -> str:
        """What it shows, as a generator's page lists it (e.g. "Fig. 5: density ...")."""
        return f"{self.paper}: {self.title}" if self.paper else self.title


# Order matters: it is the order of a page's figure list and of the rules' ``names`` params
# (a reordered list reruns the figure jobs), so new figures go at the end of their group.
FIGURES: tuple[Figure, ...] = (
    Figure("release", "Fig. 1", "Synth→Real top-1 against release date",
           category="Prompt following", caption="release.rst"),
    Figure("accuracy", "Fig. 1 (by generator)", "Synth→Real top-1 per generator",
           category="Prompt following", caption="accuracy.rst"),
    Figure("geneval", "Fig. 3 (top)", "top-1 against GenEval, per architecture",
           category="Prompt following", caption="geneval.rst", fillable=has_geneval),
    Figure("clipscore", "Fig. 3 (bottom)", "top-1 against CLIPScore, per architecture",
           category="Prompt following", caption="clipscore.rst", fillable=has_captions),
    Figure("ipc", "Fig. 7", "top-1 against images per class",
           category="Prompt following", caption="ipc.rst", fillable=has_ipc),
    Figure("geneval_wu", "Fig. 3 (top, Wu et al. only)",
           "top-1 against one GenEval source (Wu et al.'s), per architecture",
           category="Prompt following", caption="geneval_wu.rst", fillable=has_wu_geneval),
    Figure("probes", "Fig. 4", "probes (structure, texture, frequency) against RGB",
           category="Structure and texture", caption="probes.rst"),
    Figure("probe_gaps", "Fig. 4 (gaps)", "each probe's Synth→Real relative to its Real→Real",
           category="Structure and texture", caption="probe_gaps.rst"),
    # Rule probe_views: it reads a few rows of the data shards and probe views, not tables.
    Figure("probe_views", "Fig. 2", "one real and one synthetic image under every probe",
           category="Structure and texture", caption="probe_views.rst",
           on_run=False, on_page=False),
    Figure("frequency_bands", "Fig. 4 (right)", "low-/high-pass against RGB",
           category="Frequency", caption="frequency_bands.rst",
           fillable=has_frequency_probes),
    Figure("density_coverage", "Fig. 5", "density against coverage, coloured by top-1",
           category="Diversity", caption="density_coverage.rst"),
    Figure("transfer", "Fig. 6", "Real→Synth against Synth→Real",
           category="Transfer asymmetry", caption="transfer.rst"),
    # Pages only: the run's own spectra figure (every dataset, no highlight) is drawn by
    # rule spectra_figure, with this entry's caption and category.
    Figure("spectra", "", "Amplitude spectra beside real",
           category="Frequency", caption="spectra.rst", on_run=False),
)  # fmt: skip

#: The paper's tables that are neither results nor sample grids, each with a rule of its own
#: (named like it) and written under ``tables/``. Table 3 needs a captions table.
TABLES: tuple[Figure, ...] = (
    Figure("caption_samples", "Table 3", "sample captions used as prompts",
           category="Samples", caption="caption_samples.rst", fillable=has_captions,
           on_run=False, on_page=False),
)  # fmt: skip

BY_NAME: dict[str, Figure] = {f.name: f for f in (*FIGURES, *TABLES)}


def run_figures() -> list[Figure]:
    """The figures of the run's ``figures`` rule, in catalog order."""
    return [f for f in FIGURES if f.on_run]


def page_figures() -> list[Figure]:
    """The figures of a generator's page, in catalog order."""
    return [f for f in FIGURES if f.on_page]


def table_figures() -> list[Figure]:
    """The figures :func:`draw_all <synth2real.figures.paper.draw_all>` draws from the run's
    tables (those of the run's ``figures`` rule or of a page), in catalog order."""
    return [f for f in FIGURES if f.on_run or f.on_page]


def filled(grid: Grid, figures: list[Figure] | None = None) -> list[str]:
    """Names of ``figures`` (default: all) that ``grid`` can put a point on."""
    return [f.name for f in (FIGURES if figures is None else figures) if f.fillable(grid)]
