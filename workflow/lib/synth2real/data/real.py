"""Real data as shards: the demo's digits, or the paper's ImageNet subset (imagenet.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from synth2real.data import digits, imagenet
from synth2real.grid import SPLITS
from synth2real.preprocess import store_image
from synth2real.shards import chunk_rows, write_shard


def digits_rows(data: Mapping[str, Any], split: str, seed: int) -> dict[str, np.ndarray]:
    """Indices, labels and 8x8 images of one digits split (test, val, train drawn in that order)."""
    images, labels = digits.load_digits_array()
    per_class = {s: data["splits"][s] for s in ("test", "val", "train")}
    idx = digits.split_indices(labels, per_class, seed)[split]
    return {"index": idx, "label": labels[idx], "image": images[idx]}


def write_real_shard(
    data: Mapping[str, Any],
    split: str,
    shard: int,
    n_shards: int,
    seed: int,
    out: str | os.PathLike[str],
) -> None:
    """Write shard ``shard`` of ``n_shards`` of the real ``split``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if data["source"] == "imagenet":
        imagenet.write_imagenet_shard(data, split, shard, n_shards, seed, out)
        return
    rows = digits_rows(data, split, seed)
    start, stop = list(chunk_rows(len(rows["index"]), n_shards))[shard]
    sel = slice(start, stop)
    size = int(data["image_size"])
    pixels = digits.upscale(rows["image"][sel], size)  # already the stored size: stored as is
    labels = rows["label"][sel]
    write_shard(
        {
            "image": [store_image(im, size) for im in pixels],
            "label": labels.tolist(),
            "class_id": [digits.CLASS_NAMES[y] for y in labels],
            "prompt": [""] * len(labels),
            "seed": [seed] * len(labels),
            "source_id": [f"digits-{i}" for i in rows["index"][sel]],
        },
        out,
    )
