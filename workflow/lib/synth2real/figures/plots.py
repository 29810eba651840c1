"""The paper's figures from the workflow's own tables (seaborn; PNG + PDF + CSV sidecar).

Each figure function writes ``<stem>.png``, ``<stem>.pdf`` and ``<stem>.csv``. The CSV holds
exactly the points drawn, so a test (or a reader) can check a figure without parsing pixels.
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
import seaborn as sns  # noqa: E402

from synth2real.figures.style import save_figure  # noqa: E402
from synth2real.grid import REAL  # noqa: E402

# The house theme; figures.style.THEME_RC is its matplotlib-only copy (the sample tables').
sns.set_theme(style="whitegrid", context="paper")


def _label(dataset: str, names: Mapping[str, str]) -> str:
    return names.get(dataset, dataset)


#: Colour of context points: other generators on one generator's page.
CONTEXT_GREY = "0.78"


def _is_highlight(generators: pd.Series, highlight: str | None) -> pd.Series:
    """Which points are drawn in colour: all of them, or only ``highlight``'s."""
    if highlight is None:
        return pd.Series(True, index=generators.index, dtype=bool)
    return (generators == highlight).astype(bool)


def _scatter(
    ax: plt.Axes, pts: pd.DataFrame, x: str, y: str, hue: str, style: str | None = None
) -> None:
    """Highlighted points in colour (seaborn hue/style), the others as grey context behind."""
    ctx, main = pts[~pts.highlight], pts[pts.highlight]
    if len(ctx):
        ax.scatter(ctx[x], ctx[y], color=CONTEXT_GREY, s=35, zorder=1, label="other generators")
    if len(main):
        sns.scatterplot(data=main, x=x, y=y, hue=hue, style=style, s=70, ax=ax, zorder=2)
    if len(pts):
        ax.legend(fontsize=7)


def _no_data(ax: plt.Axes, why: str) -> None:
    """Say on the figure why it is empty (e.g. the demo has no GenEval scores)."""
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=8)


def probe_panel(spec: Mapping[str, Any]) -> str:
    """Which Fig. 4 panel a probe belongs to: frequency bands or structure/texture."""
    return "frequency" if spec["transform"] in ("lowpass", "highpass") else "structure/texture"


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
    highlight: str | None = None,
) -> pd.DataFrame:
    """Fig. 1 by generator: accuracy on real test per generator, real baseline as a line.

    With ``highlight`` (a generator id) that generator's column is shaded, so its page shows
    where it sits among the others.
    """
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
    if highlight is not None and highlight in set(pts.generator):
        pos = list(dict.fromkeys(pts.label)).index(names.get(highlight, highlight))
        ax.axvspan(pos - 0.4, pos + 0.4, color="gold", alpha=0.3, zorder=0)
    ax.legend(fontsize=7)
    pts["real_baseline"] = base
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    save_figure(fig, pts, stem)
    return pts


def probes_figure(
    results: pd.DataFrame,
    probes: Mapping[str, Mapping[str, Any]],
    reference_arch: str,
    stem: str | os.PathLike[str],
    highlight: str | None = None,
    panels: Sequence[str] = ("structure/texture", "frequency"),
) -> pd.DataFrame:
    """Fig. 4: each probe's Synth->Real accuracy against the rgb accuracy of the same dataset.

    Left panel structure (depth) and texture (BagNet), right panel the frequency bands, as in
    the paper; ``panels`` picks which to draw (the Frequency report group shows only the right).
    """
    rgb = synth_to_real(results, "rgb", reference_arch).set_index("train_dataset").top1
    rows = []
    for probe, spec in probes.items():
        if probe == "rgb" or probe_panel(spec) not in panels:
            continue
        for arch in spec["archs"]:
            for r in synth_to_real(results, probe, arch).itertuples():
                if r.train_dataset not in rgb.index:
                    # A generator page's grey context is whatever exists when it is drawn:
                    # another generator's probe models may be evaluated before its rgb one.
                    continue
                rows.append(
                    {
                        "train_dataset": r.train_dataset,
                        "probe": probe,
                        "arch": arch,
                        "rgb_top1": float(rgb[r.train_dataset]),
                        "probe_top1": r.top1,
                        "generator": r.generator,
                        "prompt_type": r.prompt_type,
                        "panel": probe_panel(spec),
                    }
                )
    columns = ["train_dataset", "probe", "arch", "rgb_top1", "probe_top1"]
    pts = pd.DataFrame(rows, columns=[*columns, "generator", "prompt_type", "panel"])
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        sel = pts[pts.panel == panel]
        _scatter(ax, sel, "rgb_top1", "probe_top1", hue="probe", style="prompt_type")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        ax.set(xlabel=f"rgb top-1 ({reference_arch})", ylabel="probe top-1")
        ax.set(xlim=(0, 1.02), ylim=(0, 1.02), title=f"{panel} vs RGB (Synth→Real)")
        if sel.empty:
            _no_data(ax, f"no {panel} probe in this run")
    save_figure(fig, pts, stem)
    return pts


def probe_gaps_figure(
    results: pd.DataFrame,
    probes: Mapping[str, Mapping[str, Any]],
    stem: str | os.PathLike[str],
    highlight: str | None = None,
) -> pd.DataFrame:
    """Fig. 4 as gaps: each probe's Synth->Real top-1 relative to its own Real->Real top-1.

    ``relative_top1 = synth_top1 / real_top1`` for the same probe and architecture. A probe
    removes information (depth drops colour and texture), so its raw accuracy falls for real
    and synthetic training alike; the paper trains and tests in probe space "to account for
    drop due to information removal" and reads the gap to real data in that space. 1 means
    no gap. Probe/architecture pairs without a real baseline (yet) are left out.
    """
    rows = []
    for probe, spec in probes.items():
        for arch in spec["archs"]:
            try:
                base = real_baseline(results, probe, arch)
            except ValueError:
                continue
            for r in synth_to_real(results, probe, arch).itertuples():
                rows.append(
                    {
                        "train_dataset": r.train_dataset,
                        "generator": r.generator,
                        "prompt_type": r.prompt_type,
                        "probe": probe,
                        "arch": arch,
                        "label": f"{probe} ({arch})",
                        "synth_top1": r.top1,
                        "real_top1": base,
                        "relative_top1": r.top1 / base if base > 0 else float("nan"),
                    }
                )
    cols = ["train_dataset", "generator", "prompt_type", "probe", "arch", "label"]
    pts = pd.DataFrame(rows, columns=[*cols, "synth_top1", "real_top1", "relative_top1"])
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    labels = list(dict.fromkeys(pts.label))
    pts["x"] = pts.label.map({lab: i for i, lab in enumerate(labels)}).astype(float)
    fig, ax = plt.subplots(figsize=(max(4.2, 0.9 * len(labels) + 1.5), 3.6))
    _scatter(ax, pts, "x", "relative_top1", hue="prompt_type")
    ax.axhline(1.0, color="black", ls="--", lw=1, label="Real→Real (no gap)")
    ax.legend(fontsize=7)
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
    ax.set(xlabel="probe (architecture)", ylabel="Synth→Real / Real→Real top-1")
    ax.set_title("Gap to real data in each probe's own space")
    if pts.empty:
        _no_data(ax, "no probe with a real baseline in this run")
    save_figure(fig, pts.drop(columns="x"), stem)
    return pts.drop(columns="x")


def density_coverage_figure(
    results: pd.DataFrame,
    distribution: pd.DataFrame,
    arch: str,
    stem: str | os.PathLike[str],
    highlight: str | None = None,
) -> pd.DataFrame:
    """Fig. 5: density against coverage per synthetic dataset, coloured by Synth->Real top-1.

    With ``highlight``, other generators are grey and unlabelled: colour would compete with the
    accuracy colour scale.
    """
    s2r = synth_to_real(results, "rgb", arch).set_index("train_dataset")
    pts = distribution[["dataset", "density", "coverage"]].copy()
    pts["top1"] = pts.dataset.map(s2r.top1)
    pts["generator"] = pts.dataset.map(s2r.generator)
    pts["prompt_type"] = pts.dataset.map(s2r.prompt_type)
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    fig, ax = plt.subplots(figsize=(4.4, 3.6))
    ctx, main = pts[~pts.highlight], pts[pts.highlight]
    ax.scatter(ctx.density, ctx.coverage, color=CONTEXT_GREY, s=40, label="other generators")
    sc = ax.scatter(
        main.density,
        main.coverage,
        c=main.top1,
        cmap="viridis",
        vmin=pts.top1.min() if len(pts) else 0,
        vmax=pts.top1.max() if len(pts) else 1,
        s=70,
        edgecolor="k",
    )
    for r in main.itertuples():
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


def transfer_figure(
    results: pd.DataFrame,
    arch: str,
    stem: str | os.PathLike[str],
    highlight: str | None = None,
) -> pd.DataFrame:
    """Fig. 6: Real->Synth (real-trained model on synthetic test) against Synth->Real."""
    s2r = synth_to_real(results, "rgb", arch).set_index("train_dataset").top1
    r2s = results[
        (results.direction == "real->synth") & (results.probe == "rgb") & (results.arch == arch)
    ]
    pts = pd.DataFrame({"dataset": r2s.test_dataset.values, "real_to_synth": r2s.top1.values})
    pts["synth_to_real"] = pts.dataset.map(s2r)
    pts["generator"] = r2s.generator.values
    pts["prompt_type"] = r2s.prompt_type.values
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    _scatter(ax, pts, "real_to_synth", "synth_to_real", hue="dataset")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="Real→Synth top-1", ylabel="Synth→Real top-1", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.set_title(f"Transfer asymmetry ({arch}, rgb)")
    ax.legend(fontsize=7)
    save_figure(fig, pts, stem)
    return pts


# --------------------------------------------------------------------------- Fig. 1 by date
def release_figure(
    results: pd.DataFrame,
    registry: Mapping[str, Mapping[str, Any]],
    arch: str,
    stem: str | os.PathLike[str],
    highlight: str | None = None,
) -> pd.DataFrame:
    """Fig. 1: Synth->Real top-1 against the generator's release date, real baseline dashed.

    The paper's claim is a trend over time, so the x-axis is the date itself. A registry
    without dates (the demo's DDPM) falls back to registry order, said on the axis.
    """
    pts = synth_to_real(results, "rgb", arch)
    pts["label"] = [registry.get(g, {}).get("display_name", g) for g in pts.generator]
    pts["release_date"] = [registry.get(g, {}).get("release_date") for g in pts.generator]
    dated = len(pts) > 0 and pts.release_date.notna().all()
    order = {g: i for i, g in enumerate(registry)}
    if dated:
        pts["x"] = pd.to_datetime(pts.release_date)
    else:
        pts["x"] = pts.generator.map(order).astype(float)
    pts = pts.sort_values(["x", "generator", "prompt_type"], ignore_index=True)
    base = real_baseline(results, "rgb", arch)
    pts["real_baseline"] = base
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    palette = dict(zip(sorted(set(pts.prompt_type)), sns.color_palette()))
    for ptype, sel in pts.groupby("prompt_type", sort=True):
        ax.plot(sel.x, sel.top1, "-", color=palette[ptype], alpha=0.5, lw=1)
        main = sel[sel.highlight]
        ax.scatter(main.x, main.top1, color=palette[ptype], s=45, zorder=3, label=ptype)
        ctx = sel[~sel.highlight]
        ax.scatter(ctx.x, ctx.top1, color=CONTEXT_GREY, s=30, zorder=2)
    if dated:  # undated points are named by their ticks instead
        for r in pts[pts.highlight].drop_duplicates("generator").itertuples():
            ax.annotate(
                r.label, (r.x, r.top1), fontsize=6, xytext=(3, 3), textcoords="offset points"
            )
    ax.axhline(base, color="black", ls="--", lw=1, label=f"real baseline ({base:.3f})")
    xlabel = "release date" if dated else "generator (registry order; no release dates)"
    if not dated and len(pts):
        ticks = pts.drop_duplicates("generator")
        ax.set_xticks(ticks.x, ticks.label, rotation=30, fontsize=7)
    ax.set(xlabel=xlabel, ylabel="top-1 on real test", ylim=(0, 1.02))
    ax.set_title(f"Synth→Real over time ({arch}, rgb)")
    ax.legend(fontsize=7)
    pts = pts.drop(columns="x")
    save_figure(fig, pts, stem)
    return pts


# --------------------------------------------------------------------------- Fig. 3
def geneval_table(
    registry: Mapping[str, Mapping[str, Any]], cite: str | None = None
) -> pd.DataFrame:
    """GenEval score, its source and citation per generator (registry ``geneval``; None = not
    published). ``cite`` keeps only the scores of that citation (e.g. Wu et al.'s).

    The citation (``geneval.cite``) marks each point by who computed the score: the paper
    takes Wu et al.'s numbers, and scores from other papers are not strictly comparable. A
    registry entry without one is marked by its full ``source``.
    """
    rows = [
        {
            "generator": g,
            "x": s["geneval"]["score"],
            "x_source": s["geneval"]["source"],
            "x_cite": s["geneval"].get("cite", s["geneval"]["source"]),
        }
        for g, s in registry.items()
        if s.get("geneval")
    ]
    frame = pd.DataFrame(rows, columns=["generator", "x", "x_source", "x_cite"])
    return frame if cite is None else frame[frame.x_cite == cite].reset_index(drop=True)


def clipscore_table(
    clipscore: pd.DataFrame, synthetic: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """CLIPScore per generator, from its caption dataset (as the paper computes it)."""
    measures = clipscore.get("measure", pd.Series(["clipscore"] * len(clipscore)))
    rows = [
        {"generator": synthetic[d][0], "x": float(v), "x_source": f"{m} of {d}"}
        for d, v, m in zip(clipscore.get("dataset", []), clipscore.get("clipscore", []), measures)
        if d in synthetic and synthetic[d][1] == "caption"
    ]
    return pd.DataFrame(rows, columns=["generator", "x", "x_source"])


def adherence_table(
    adherence: pd.DataFrame, synthetic: Mapping[str, tuple[str, str]]
) -> pd.DataFrame:
    """Measured prompt following per dataset (``metrics.adherence: judge``, the digits'
    GenEval stand-in): unlike a published GenEval, each prompt type has its own score."""
    rows = [
        {"generator": synthetic[d][0], "prompt_type": synthetic[d][1], "x": float(v),
         "x_source": str(m)}
        for d, v, m in zip(adherence.get("dataset", []), adherence.get("adherence", []),
                           adherence.get("measure", []))
        if d in synthetic
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["generator", "prompt_type", "x", "x_source"])


def alignment_figure(
    results: pd.DataFrame,
    scores: pd.DataFrame,
    metric: str,
    archs: Sequence[str],
    stem: str | os.PathLike[str],
    highlight: str | None = None,
    xlabel: str | None = None,
) -> pd.DataFrame:
    """Fig. 3: Synth->Real top-1 against a prompt-following score, one panel per architecture.

    ``scores`` has one row per generator (``generator, x, x_source``, and optionally
    ``x_cite``, which then picks each point's marker); both prompt types of a generator sit at
    its score. With a ``prompt_type`` column (measured stand-ins) each dataset has its own.
    The real baseline of each architecture is a dashed line; ``xlabel`` names the score
    (default ``metric``), so a stand-in says it is one.
    """
    keys = ["generator", "prompt_type"] if "prompt_type" in scores.columns else ["generator"]
    rows = []
    for arch in archs:
        try:
            base = real_baseline(results, "rgb", arch)
        except ValueError:
            base = float("nan")
        pts = synth_to_real(results, "rgb", arch).merge(scores, on=keys, how="inner")
        pts["arch"] = arch
        pts["real_baseline"] = base
        rows.append(pts)
    cite = ["x_cite"] if "x_cite" in scores.columns else []
    cols = ["train_dataset", "generator", "prompt_type", "arch", "x", "x_source", *cite, "top1"]
    pts = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    pts = pts[[*cols, "real_baseline"]].rename(
        columns={"x": metric, "x_source": f"{metric}_source", "x_cite": f"{metric}_cite"}
    )
    pts["highlight"] = _is_highlight(pts.generator, highlight)
    style = f"{metric}_cite" if cite else None
    fig, axes = plt.subplots(1, len(archs), figsize=(3.3 * len(archs), 3.2), squeeze=False)
    for ax, arch in zip(axes[0], archs):
        sel = pts[pts.arch == arch]
        _scatter(ax, sel, metric, "top1", hue="prompt_type", style=style)
        if len(sel) and np.isfinite(sel.real_baseline.iloc[0]):
            ax.axhline(sel.real_baseline.iloc[0], color="black", ls="--", lw=1)
        if sel.empty:
            _no_data(ax, f"no {metric} scores for this run's generators")
        ax.set(xlabel=xlabel or metric, ylabel="top-1 on real test", ylim=(0, 1.02), title=arch)
    save_figure(fig, pts, stem)
    return pts


# --------------------------------------------------------------------------- Fig. 7
def ipc_figure(
    ipc: pd.DataFrame, stem: str | os.PathLike[str], highlight: str | None = None
) -> pd.DataFrame:
    """Fig. 7: Synth->Real top-1 against images per class, a line per dataset.

    Colour is the generator, line style the prompt variant (class names, captions, reduced
    captions per class); the real data's curve is black.
    """
    cols = ["dataset", "generator", "variant", "ipc", "arch", "top1"]
    pts = ipc[cols].sort_values(["generator", "variant", "ipc"], ignore_index=True)
    pts["highlight"] = _is_highlight(pts.generator, highlight) | (pts.generator == REAL)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    gens = [g for g in dict.fromkeys(pts.generator) if g != REAL]
    colours = dict(zip(gens, sns.color_palette("husl", max(1, len(gens)))))
    dashes = {"classname": "-", "caption": "--"}
    context_label = "other generators"
    for (gen, variant), sel in pts.groupby(["generator", "variant"], sort=False):
        if gen == REAL:
            colour, ls, label = "black", "-", "real"
        elif sel.highlight.any():
            colour, ls, label = colours[gen], dashes.get(variant, ":"), f"{gen} {variant}"
        else:  # one legend entry for all grey context lines
            colour, ls, label = CONTEXT_GREY, dashes.get(variant, ":"), context_label
            context_label = None
        ax.plot(sel.ipc, sel.top1, ls, marker="o", ms=4, color=colour, label=label)
    if pts.empty:
        _no_data(ax, "no IPC grid (scaling.ipc) in this run")
    else:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(pts.ipc)), [str(n) for n in sorted(set(pts.ipc))])
        ax.legend(fontsize=6)
    ax.set(xlabel="images per class", ylabel="top-1 on real test", ylim=(0, 1.02))
    ax.set_title("Scaling with images per class (rgb)")
    save_figure(fig, pts, stem)
    return pts


# --------------------------------------------------------------------------- spectra
def spectra_highlight_figure(
    spectra: pd.DataFrame,
    slopes: pd.DataFrame,
    synthetic: Mapping[str, tuple[str, str]],
    stem: str | os.PathLike[str],
    highlight: str | None = None,
) -> pd.DataFrame:
    """Amplitude spectra (log-log): real black, the highlighted generator's datasets in colour.

    ``spectra`` has ``dataset, frequency, amplitude`` rows; ``slopes`` ``dataset, alpha``.
    """
    pts = spectra[["dataset", "frequency", "amplitude"]].copy()
    pts = pts[(pts.frequency > 0) & (pts.amplitude > 0)].reset_index(drop=True)
    pts["generator"] = [synthetic.get(d, (REAL, ""))[0] for d in pts.dataset]
    pts["highlight"] = _is_highlight(pts.generator, highlight) | (pts.generator == REAL)
    alpha = dict(zip(slopes.dataset, slopes.alpha))
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    shown = [d for d in dict.fromkeys(pts.dataset) if d != REAL]
    colours = dict(zip(shown, sns.color_palette("husl", max(1, len(shown)))))
    for d, sel in pts.groupby("dataset", sort=False):
        label = f"{d} (α={alpha[d]:.2f})" if d in alpha else d
        if d == REAL:
            ax.plot(sel.frequency, sel.amplitude, color="black", lw=2.5, label=label, zorder=3)
        elif sel.highlight.any():
            ax.plot(sel.frequency, sel.amplitude, color=colours[d], lw=1.4, label=label, zorder=2)
        else:
            ax.plot(sel.frequency, sel.amplitude, color=CONTEXT_GREY, lw=1, zorder=1)
    ax.set(xscale="log", yscale="log", xlabel="spatial frequency (fraction of Nyquist)")
    ax.set(ylabel="mean amplitude |FFT|", title="Amplitude spectra")
    ax.legend(fontsize=6)
    save_figure(fig, pts, stem)
    return pts
