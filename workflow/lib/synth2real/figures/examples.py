"""Examples of the data: Fig. 2 (one image under every probe) and Table 3 (sample captions).

Both show what the benchmark feeds its models rather than a number it measured. Fig. 2 reads
only the rows it shows: a paper split holds 100,000 PNGs and each of its probe views as many
again, and it needs one row of each. Rows are chosen deterministically (the first of the first
train shard, the first captions in ``image_id`` order), so a rerun shows the same examples.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synth2real.shards import decode_images

#: Rows per read while looking for a row: memory stays bounded however deep the row sits.
_BATCH_ROWS = 64


def read_rows(path: str | os.PathLike[str], rows: Sequence[int], columns: list[str]) -> pa.Table:
    """``columns`` of the given rows of one shard (in ``rows`` order), streamed in batches.

    Stops at the last wanted row: a row near the start of a shard costs one batch, never the
    shard's whole image column.
    """
    wanted = sorted(set(int(r) for r in rows))
    got: dict[int, pa.Table] = {}
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_BATCH_ROWS, columns=columns):
        stop = start + batch.num_rows
        table = pa.Table.from_batches([batch])
        for r in wanted:
            if start <= r < stop:
                got[r] = table.slice(r - start, 1)
        start = stop
        if wanted and wanted[-1] < stop:
            break
    missing = [r for r in wanted if r not in got]
    if missing:
        raise IndexError(f"{path} has {start} rows, not rows {missing}")
    return pa.concat_tables([got[int(r)] for r in rows])


def matching_row(real: Mapping[str, Any], synth_shard: str | os.PathLike[str]) -> int:
    """The row of ``synth_shard`` to show beside the real row ``real`` (its source_id, label).

    A caption dataset's row whose prompt is the real image's caption (``source_id`` =
    ``<real source_id>/<repeat>``) shows the same scene regenerated; otherwise the first row
    of the same class; otherwise the first row.
    """
    t = pq.read_table(synth_shard, columns=["source_id", "label"]).to_pydict()
    prefix = f"{real['source_id']}/"
    for key in (
        lambda i: str(t["source_id"][i]).startswith(prefix),
        lambda i: t["label"][i] == real["label"],
    ):
        hit = next((i for i in range(len(t["label"])) if key(i)), None)
        if hit is not None:
            return hit
    return 0


def patch_size(spec: Mapping[str, Any]) -> int | None:
    """Side of the patches an identity probe's models see: BagNet-<n> sees n x n patches.

    The n is in the architecture's name and :func:`synth2real.train.architectures.bagnet9`
    refuses settings that would make it another size; other models see the whole image.
    """
    sizes = [int(m.group(1)) for a in spec.get("archs", []) if (m := re.match(r"bagnet(\d+)", a))]
    return min(sizes) if sizes else None


def patch_mosaic(image: np.ndarray, size: int, gap: int = 1) -> np.ndarray:
    """``image`` cut into ``size`` x ``size`` tiles set apart by white ``gap`` lines: the bag
    of local patches a BagNet classifies (the edge tiles may be smaller)."""
    h, w = image.shape[:2]
    ny, nx = -(-h // size), -(-w // size)
    out = np.full((h + gap * (ny - 1), w + gap * (nx - 1), 3), 255, dtype=np.uint8)
    for i in range(ny):
        for j in range(nx):
            tile = image[i * size : (i + 1) * size, j * size : (j + 1) * size]
            y, x = i * (size + gap), j * (size + gap)
            out[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    return out


def stretch(image: np.ndarray) -> np.ndarray:
    """Min-max contrast stretch to uint8: a high-pass band's amplitude is a few grey levels."""
    x = image.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    return ((x - lo) / (hi - lo if hi > lo else 1.0) * 255).round().astype(np.uint8)


def shown_view(image: np.ndarray, spec: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """What a probe's models see, for display, and how it was made displayable."""
    if spec["transform"] == "identity":
        size = patch_size(spec)
        if size is not None:
            return patch_mosaic(image, size), f"{size}x{size} patches"
        return image, "as stored"
    if spec["transform"] == "highpass" or image.dtype != np.uint8:
        return stretch(image), "contrast stretched"
    return image, "as stored"


def probe_view_images(
    sources: Mapping[str, Mapping[str, Any]], probes: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, dict[str, np.ndarray]], pd.DataFrame]:
    """Fig. 2's cells: ``{dataset: {probe: image}}`` and the sidecar of what each cell shows.

    ``sources`` maps each dataset to ``{"data": <train shard>, "views": {probe: <view dir>}}``
    (views of the non-identity probes). The real dataset comes first and shows row 0 of its
    shard; every other dataset its :func:`matching_row`. A probe view holds the same rows as
    the data shard, under the same file name.
    """
    datasets = list(sources)
    first = pq.read_table(sources[datasets[0]]["data"], columns=["source_id", "label"])
    real = {k: v[0] for k, v in first.slice(0, 1).to_pydict().items()}
    cells: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for k, d in enumerate(datasets):
        data = Path(sources[d]["data"])
        row = 0 if k == 0 else matching_row(real, data)
        first = read_rows(data, [row], ["image", "label", "class_id", "source_id"])
        meta = first.drop_columns(["image"]).to_pylist()[0]
        cells[d] = {}
        for probe, spec in probes.items():
            if spec["transform"] == "identity":  # the data shard itself, read once
                table = first
            else:
                table = read_rows(Path(sources[d]["views"][probe]) / data.name, [row], ["image"])
            cells[d][probe], shown = shown_view(decode_images(table)[0], spec)
            rows.append(
                {"dataset": d, "shard": data.name, "row": row, **meta, "probe": probe,
                 "transform": spec["transform"], "shown": shown}
            )  # fmt: skip
    return cells, pd.DataFrame(rows)


def probe_views_figure(
    cells: Mapping[str, Mapping[str, np.ndarray]],
    points: pd.DataFrame,
    labels: Mapping[str, str],
    stem: str | os.PathLike[str],
) -> pd.DataFrame:
    """Fig. 2: a row per dataset (real, then synthetic), a column per probe; ``labels`` names
    the rows. The sidecar lists the row of the shard each cell shows and how it is shown."""
    from synth2real.figures import plots  # matplotlib with the Agg backend

    datasets = list(cells)
    probes = list(next(iter(cells.values()))) if cells else []
    fig, axes = plots.plt.subplots(
        max(1, len(datasets)),
        max(1, len(probes)),
        figsize=(1.9 * max(1, len(probes)), 2.0 * max(1, len(datasets)) + 0.3),
        squeeze=False,
    )
    shown = {(r.dataset, r.probe): r.shown for r in points.itertuples()}
    for i, d in enumerate(datasets):
        for j, p in enumerate(probes):
            ax = axes[i, j]
            ax.imshow(cells[d][p], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(shown[(d, p)], fontsize=6)
            if i == 0:
                ax.set_title(p, fontsize=8)
            if j == 0:
                ax.set_ylabel(labels.get(d, d), fontsize=8)
    fig.suptitle("What each probe's models see", fontsize=9)
    plots.save_figure(fig, points, stem)
    return points


def caption_samples(
    captions: pd.DataFrame,
    classes: Sequence[Mapping[str, Any]],
    labels: Sequence[int],
    per_class: int,
) -> pd.DataFrame:
    """Table 3's rows: the first ``per_class`` captions (``image_id`` order, the order the
    caption prompts take them in) of each class in ``labels``, in label order."""
    by_label = {int(c["label"]): c for c in classes}
    caps = captions.assign(class_id=captions.class_id.astype(str)).sort_values("image_id")
    rows = []
    for label in labels:
        c = by_label[int(label)]
        for r in caps[caps.class_id == str(c["class_id"])].head(per_class).itertuples():
            rows.append(
                {
                    "class": c["class_name"],
                    "image_id": r.image_id,
                    "caption": str(r.caption).strip(),
                }
            )
    return pd.DataFrame(rows, columns=["class", "image_id", "caption"])


def caption_samples_markdown(samples: pd.DataFrame, models: Sequence[str]) -> str:
    """Table 3 as a Markdown document."""
    from synth2real.figures.tables import markdown_table

    by = f" (captioned by {', '.join(models)})" if models else ""
    head = (
        f"# Sample captions{by}\n\n"
        "Paper Table 3: captions of real training images, used as prompts "
        "(`<class name>, <caption>`).\n\n"
    )
    return head + markdown_table(samples)
