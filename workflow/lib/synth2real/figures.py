"""The paper's figures from the workflow's own tables (seaborn; PNG + PDF + CSV sidecar).

Each figure function writes ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.csv``. The CSV holds
exactly the points drawn, so a test (or a reader) can check a figure without parsing pixels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from synth2real.evaluation import write_csv_atomic  # noqa: E402
from synth2real.grid import REAL  # noqa: E402
from synth2real.shards import atomic_output  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


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


def _label(dataset: str, names: Mapping[str, str]) -> str:
    return names.get(dataset, dataset)


def synth_to_real(results: pd.DataFrame, probe: str, arch: str) -> pd.DataFrame:
    """Synth->Real rows of one probe/arch (train on synthetic, test on real)."""
    sel = results[
        (results.direction == "synth->real") & (results.probe == probe) & (results.arch == arch)
    ]
    return sel[["train_dataset", "generator", "prompt_type", "top1"]].reset_index(drop=True)


def real_baseline(results: pd.DataFrame, probe: str, arch: str) -> float:
    sel = results[(results.direction == "real") & (results.probe == probe) & (results.arch == arch)]
    if sel.empty:
        raise ValueError(f"no real baseline for probe={probe} arch={arch}")
    return float(sel.top1.iloc[0])


def accuracy_figure(
    results: pd.DataFrame,
    order: Sequence[str],
    arch: str,
    stem: str | os.PathLike[str],
    names: Mapping[str, str],
) -> pd.DataFrame:
    """Fig. 1: accuracy on real test per generator, real baseline as a line."""
    pts = synth_to_real(results, "rgb", arch)
    pts["order"] = pts.generator.map({g: i for i, g in enumerate(order)})
    pts = pts.sort_values(["order", "prompt_type"]).drop(columns="order").reset_index(drop=True)
    pts["label"] = pts.generator.map(lambda g: names.get(g, g))
    base = real_baseline(results, "rgb", arch)
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(order) + 2), 3.2))
    sns.pointplot(
        data=pts, x="label", y="top1", hue="prompt_type", linestyles="-", ax=ax, markers="o"
    )
    ax.axhline(base, color="black", ls="--", lw=1, label=f"real baseline ({base:.3f})")
    ax.set(
        xlabel="generator",
        ylabel="top-1 on real test",
        ylim=(0, 1.02),
        title=f"Synth→Real ({arch}, rgb)",
    )
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=7)
    pts["real_baseline"] = base
    save_figure(fig, pts, stem)
    return pts


def probes_figure(
    results: pd.DataFrame,
    probes: Mapping[str, Mapping[str, Any]],
    reference_arch: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Fig. 4: each probe's Synth->Real accuracy against the rgb accuracy of the same dataset."""
    rgb = synth_to_real(results, "rgb", reference_arch).set_index("train_dataset").top1
    rows = []
    for probe, spec in probes.items():
        if probe == "rgb":
            continue
        for arch in spec["archs"]:
            for r in synth_to_real(results, probe, arch).itertuples():
                rows.append(
                    {
                        "train_dataset": r.train_dataset,
                        "probe": probe,
                        "arch": arch,
                        "rgb_top1": float(rgb[r.train_dataset]),
                        "probe_top1": r.top1,
                    }
                )
    pts = pd.DataFrame(rows, columns=["train_dataset", "probe", "arch", "rgb_top1", "probe_top1"])
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.scatterplot(data=pts, x="rgb_top1", y="probe_top1", hue="probe", style="probe", s=60, ax=ax)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel=f"rgb top-1 ({reference_arch})", ylabel="probe top-1")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), title="Probes vs RGB (Synth→Real)")
    save_figure(fig, pts, stem)
    return pts


def density_coverage_figure(
    results: pd.DataFrame, distribution: pd.DataFrame, arch: str, stem: str | os.PathLike[str]
) -> pd.DataFrame:
    """Fig. 5: density against coverage per synthetic dataset, coloured by Synth->Real top-1."""
    acc = synth_to_real(results, "rgb", arch).set_index("train_dataset").top1
    pts = distribution[["dataset", "density", "coverage"]].copy()
    pts["top1"] = pts.dataset.map(acc)
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    sc = ax.scatter(pts.density, pts.coverage, c=pts.top1, cmap="viridis", s=70, edgecolor="k")
    for r in pts.itertuples():
        ax.annotate(
            r.dataset,
            (r.density, r.coverage),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    fig.colorbar(sc, ax=ax, label="Synth→Real top-1")
    ax.set(xlabel="density", ylabel="coverage", title="Fidelity vs diversity")
    save_figure(fig, pts, stem)
    return pts


def transfer_figure(results: pd.DataFrame, arch: str, stem: str | os.PathLike[str]) -> pd.DataFrame:
    """Fig. 6: Real->Synth (real-trained model on synthetic test) against Synth->Real."""
    s2r = synth_to_real(results, "rgb", arch).set_index("train_dataset").top1
    r2s = results[
        (results.direction == "real->synth") & (results.probe == "rgb") & (results.arch == arch)
    ]
    pts = pd.DataFrame({"dataset": r2s.test_dataset.values, "real_to_synth": r2s.top1.values})
    pts["synth_to_real"] = pts.dataset.map(s2r)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    sns.scatterplot(data=pts, x="real_to_synth", y="synth_to_real", hue="dataset", s=70, ax=ax)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="Real→Synth top-1", ylabel="Synth→Real top-1", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.set_title(f"Transfer asymmetry ({arch}, rgb)")
    ax.legend(fontsize=7)
    save_figure(fig, pts, stem)
    return pts


def sample_grid(
    real: tuple[np.ndarray, np.ndarray],
    synth: tuple[np.ndarray, np.ndarray],
    class_names: Sequence[str],
    per_class: int,
    title: str,
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Real samples (left) beside a generator's samples (right): a column per class."""
    n_cls = len(class_names)
    fig, axes = plt.subplots(
        per_class, 2 * n_cls, figsize=(0.6 * 2 * n_cls + 0.5, 0.6 * per_class + 0.6)
    )
    axes = np.atleast_2d(axes)
    rows = []
    for side, (images, labels), name in ((0, real, REAL), (1, synth, title)):
        for c in range(n_cls):
            idx = np.flatnonzero(labels == c)[:per_class]
            for k in range(per_class):
                ax = axes[k, side * n_cls + c]
                ax.axis("off")
                if k < len(idx):
                    ax.imshow(images[idx[k]])
                    rows.append({"source": name, "class": class_names[c], "index": int(idx[k])})
                if k == 0:
                    ax.set_title(class_names[c], fontsize=6)
    fig.suptitle(f"real (left)  |  {title} (right)", fontsize=9)
    pts = pd.DataFrame(rows)
    save_figure(fig, pts, stem)
    return pts
