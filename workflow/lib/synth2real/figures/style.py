"""The look of every figure and table, and the one writer of their files.

The seaborn figures (:mod:`synth2real.figures.plots`) set seaborn's ``whitegrid`` theme in its
``paper`` context. The sample tables (:mod:`synth2real.figures.tables`) must look the same
without importing seaborn (about 1 s of every table job's start-up), so :data:`THEME_RC`
holds what that theme sets in matplotlib, and ``tests/test_figures.py`` checks that it still
equals what the installed seaborn sets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import cycler  # noqa: E402

from synth2real.io import atomic_output, write_csv_atomic  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

#: ``seaborn.set_theme(style="whitegrid", context="paper")`` as matplotlib rcParams: every key
#: it changes, except ``image.cmap`` (seaborn's own "rocket", unknown to matplotlib alone).
THEME_RC = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".8",
    "axes.grid": True,
    "axes.labelcolor": ".15",
    "axes.labelsize": 9.600000000000001,
    "axes.linewidth": 1.0,
    "axes.prop_cycle": cycler(
        color=[
            "#4c72b0",
            "#dd8452",
            "#55a868",
            "#c44e52",
            "#8172b3",
            "#937860",
            "#da8bc3",
            "#8c8c8c",
            "#ccb974",
            "#64b5cd",
        ]  # fmt: skip
    ),
    "axes.titlesize": 9.600000000000001,
    "font.sans-serif": [
        "Arial",
        "DejaVu Sans",
        "Liberation Sans",
        "Bitstream Vera Sans",
        "sans-serif",
    ],
    "font.size": 9.600000000000001,
    "grid.color": ".8",
    "legend.fontsize": 8.8,
    "legend.title_fontsize": 9.600000000000001,
    "lines.linewidth": 1.2000000000000002,
    "lines.markersize": 4.800000000000001,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.bottom": False,
    "xtick.color": ".15",
    "xtick.labelsize": 8.8,
    "xtick.major.size": 4.800000000000001,
    "xtick.major.width": 1.0,
    "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8,
    "ytick.color": ".15",
    "ytick.labelsize": 8.8,
    "ytick.left": False,
    "ytick.major.size": 4.800000000000001,
    "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2,
    "ytick.minor.width": 0.8,
}


def use_theme() -> None:
    """Apply :data:`THEME_RC` (the seaborn figures apply seaborn's theme itself)."""
    plt.rcParams.update(THEME_RC)


def save_figure(fig: plt.Figure, points: pd.DataFrame, stem: str | os.PathLike[str]) -> None:
    """Write PNG, PDF (each via temp + rename) and the CSV sidecar of plotted points."""
    # Not Path.with_suffix: dataset ids such as "ddpm-cfg7.5-classname" contain dots.
    stem = str(stem)
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        metadata = {"CreationDate": None} if ext == "pdf" else None
        with atomic_output(f"{stem}.{ext}") as fh:
            fig.savefig(fh, format=ext, dpi=150, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    write_csv_atomic(points, f"{stem}.csv")
