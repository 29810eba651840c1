"""Tables 1-2 (sample grids) and the results Markdown: tables, not seaborn figures.

Image tables draw with matplotlib alone and the Markdown needs neither, so the table jobs
(samples_table, samples_prompts, sample_grid, results_markdown, gather_ipc) do not import
seaborn. Each image table writes ``<stem>.png``, ``<stem>.pdf`` and a ``<stem>.csv`` sidecar
listing which row of which split each cell shows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from synth2real.figures.style import save_figure, use_theme  # noqa: E402
from synth2real.grid import REAL  # noqa: E402

use_theme()


def sample_grid(
    real: Mapping[int, Sequence[tuple[int, np.ndarray]]],
    synth: Mapping[int, Sequence[tuple[int, np.ndarray]]],
    class_names: Sequence[str],
    per_class: int,
    title: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Real samples (left) beside a generator's samples (right): a column per class drawn.

    ``real`` and ``synth`` are ``{label: [(row, image), ...]}`` from :func:`pick_samples`,
    which reads only the drawn rows: a paper train split is 100,000 images of 200 classes.
    """
    labels = sorted(set(real) | set(synth))
    n_cls = max(1, len(labels))
    fig, axes = plt.subplots(
        per_class, 2 * n_cls, figsize=(0.6 * 2 * n_cls + 0.5, 0.6 * per_class + 0.6)
    )
    axes = np.atleast_2d(axes)
    rows = []
    for side, (picked, name) in enumerate(((real, REAL), (synth, title))):
        for j, c in enumerate(labels):
            cell = list(picked.get(c, []))[:per_class]
            for k in range(per_class):
                ax = axes[k, side * n_cls + j]
                ax.axis("off")
                if k < len(cell):
                    ax.imshow(cell[k][1])
                    rows.append({"source": name, "class": class_names[c], "index": cell[k][0]})
                if k == 0:
                    ax.set_title(class_names[c], fontsize=6)
    fig.suptitle(f"real (left)  |  {title} (right)", fontsize=9)
    pts = pd.DataFrame(rows, columns=["source", "class", "index"])
    save_figure(fig, pts, stem)
    return pts


def pick_samples(
    shards: Sequence[str | os.PathLike[str]], labels: Sequence[int], per_class: int
) -> dict[int, list[tuple[int, np.ndarray]]]:
    """The first ``per_class`` rows of each wanted label as ``{label: [(row, image), ...]}``.

    Reads the label column of each shard until every label has its rows, and decodes only
    the chosen images (:func:`synth2real.shards.read_images`): memory stays that of one
    shard's page however large the split, where a paper split holds 100,000 PNGs and a
    sample figure needs a few dozen.
    """
    from synth2real.shards import read_images, read_shard, shard_files

    want = {int(c): [] for c in labels}
    offset = 0
    for path in shard_files(shards):
        y = read_shard(path, ["label"]).column("label").to_numpy()
        counts = {c: len(v) for c, v in want.items()}
        chosen = []
        for i, c in enumerate(y.tolist()):
            if c in counts and counts[c] < per_class:
                counts[c] += 1
                chosen.append(i)
        for i, image in zip(chosen, read_images(path, chosen)):
            want[int(y[i])].append((offset + i, image))
        offset += len(y)
        if all(len(v) >= per_class for v in want.values()):
            break
    return want


def sample_grid_of_shards(
    real: Sequence[str | os.PathLike[str]],
    synth: Sequence[str | os.PathLike[str]],
    class_names: Sequence[str],
    figures: Mapping[str, Any],
    title: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """:func:`sample_grid` of two splits: ``figures.samples_per_class`` images of at most
    ``figures.table_classes`` classes each (200 classes would be 1,600 axes), read alone."""
    labels = table_classes(len(class_names), figures["table_classes"])
    per_class = figures["samples_per_class"]
    real_rows, synth_rows = (pick_samples(s, labels, per_class) for s in (real, synth))
    return sample_grid(real_rows, synth_rows, class_names, per_class, title, stem)


def sample_table_of_shards(
    sources: Sequence[tuple[str, Sequence[str | os.PathLike[str]]]],
    class_names: Sequence[str],
    figures: Mapping[str, Any],
    title: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Tables 1-2 (:func:`class_grid`) of ``[(row label, split shards), ...]``:
    ``figures.table_samples_per_class`` images of ``figures.table_classes`` classes, read
    alone."""
    labels = table_classes(len(class_names), figures["table_classes"])
    per_class = figures["table_samples_per_class"]
    picked = [(name, pick_samples(shards, labels, per_class)) for name, shards in sources]
    return class_grid(picked, class_names, per_class, title, stem)


def table_classes(n_classes: int, n_shown: int) -> list[int]:
    """Labels shown in the sample tables: ``n_shown`` spread evenly over all classes."""
    if n_shown >= n_classes:
        return list(range(n_classes))
    return sorted(set(np.linspace(0, n_classes - 1, n_shown).round().astype(int).tolist()))


def class_grid(
    sources: Sequence[tuple[str, Mapping[int, Sequence[tuple[int, np.ndarray]]]]],
    class_names: Sequence[str],
    per_class: int,
    title: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Tables 1-2: a block of rows per source (real, then generators), a column per class.

    ``sources`` is ``[(name, {label: [(row, image), ...]}), ...]``, e.g. from
    :func:`pick_samples`. The sidecar lists which row of which split each cell shows.
    """
    labels = sorted({c for _, picked in sources for c in picked})
    n_rows = max(1, len(sources) * per_class)
    fig, axes = plt.subplots(
        n_rows,
        max(1, len(labels)),
        figsize=(0.75 * max(1, len(labels)) + 1.6, 0.75 * n_rows + 0.5),
        squeeze=False,
    )
    rows = []
    for s, (name, picked) in enumerate(sources):
        for j, c in enumerate(labels):
            cell = list(picked.get(c, []))[:per_class]
            for k in range(per_class):
                ax = axes[s * per_class + k, j]
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_visible(False)
                if k < len(cell):
                    ax.imshow(cell[k][1])
                    rows.append({"source": name, "class": class_names[c], "index": cell[k][0]})
                if s == 0 and k == 0:
                    ax.set_title(class_names[c], fontsize=7)
                if j == 0 and k == 0:
                    ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=9)
    pts = pd.DataFrame(rows, columns=["source", "class", "index"])
    save_figure(fig, pts, stem)
    return pts


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A GitHub Markdown table (no tabulate dependency); floats at ``floatfmt``."""
    if frame.empty:
        return "_(no rows)_\n"

    def cell(v: Any) -> str:
        if isinstance(v, float | np.floating):
            return "–" if np.isnan(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def results_markdown(sections: Sequence[tuple[str, pd.DataFrame]], title: str) -> str:
    """Every table behind the figures as one Markdown document, a section per table."""
    out = [f"# {title}\n"]
    for heading, frame in sections:
        out += [f"\n## {heading}\n\n", markdown_table(frame)]
    return "".join(out)
