"""The paper's real data: a class subset of a local ILSVRC2012 folder, written as shards.

Accepted layout of ``data.imagenet_root``::

    <root>/train/<wnid>/*.JPEG              the official train set, one folder per class
    <root>/val/<wnid>/*.JPEG                the official val set in class folders, or
    <root>/val/*.JPEG + a ground-truth file the official val set flat, labelled by one of:
        LOC_val_solution.csv   Kaggle's file: ``ImageId,PredictionString``; the wnid is the
                               first token of PredictionString
        val_labels.txt         ``<filename> <wnid>`` per line (space or tab; more columns,
        val_annotations.txt    e.g. boxes, are ignored)

The ground-truth file is looked for in ``<root>/val``, ``<root>`` and up to three parent folders
(Kaggle puts ``LOC_val_solution.csv`` three levels above ``ILSVRC/Data/CLS-LOC``). The devkit's
``ILSVRC2012_validation_ground_truth.txt`` is *not* accepted: it holds integer ids whose mapping
to wnids lives in ``meta.mat``; convert it to ``val_labels.txt`` once instead.

Splits, all per class of ``data.classes`` (label = row order of the TSV):

- ``train``: ``data.splits.train`` images drawn by seed from ``train/<wnid>``;
- ``val``: ``data.splits.val`` images drawn from the *remaining* train images, so the model
  selection split is disjoint from train yet comes from the same distribution;
- ``test``: ``data.splits.test`` images from the official val set (all of them if exactly that
  many, else drawn by seed), because the official val set is the held-out real test set.

The selection is computed from directory listings only, so every shard job can recompute it in
well under a second instead of decoding 130k images; only the shard's own rows are decoded.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synth2real.grid import SPLITS, read_classes
from synth2real.input_checks import check_imagenet, check_val_layout
from synth2real.preprocess import store_image, stored_pixels
from synth2real.seeding import rng
from synth2real.shards import chunk_rows, write_shard

#: File suffixes read as images (case-insensitive): ILSVRC uses ``.JPEG``.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class Row:
    """One selected image: where it is (relative to the root) and its class."""

    source_id: str
    label: int
    wnid: str


def list_images(folder: Path) -> list[str]:
    """Sorted image file names in ``folder`` (no decoding, no recursion)."""
    return sorted(
        name
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
    )


def read_ground_truth(path: Path) -> dict[str, str]:
    """Map image stem (file name without suffix) -> wnid from an accepted ground-truth file.

    Keys are stems because Kaggle's CSV names images without ``.JPEG`` while text files
    usually include it.
    """
    labels: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(
                reader.fieldnames
            ):
                raise ValueError(f"{path}: expected a CSV with columns ImageId,PredictionString")
            for rec in reader:
                tokens = rec["PredictionString"].split()
                if tokens:
                    labels[Path(rec["ImageId"]).stem] = tokens[0]
    else:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                tokens = line.split()
                if not tokens:
                    continue
                if len(tokens) < 2:
                    raise ValueError(f"{path}:{lineno}: expected '<filename> <wnid>', got {line!r}")
                labels[Path(tokens[0]).stem] = tokens[1]
    if not labels:
        raise ValueError(f"{path}: no labels found")
    return labels


def val_files(root: Path, wnids: Sequence[str]) -> dict[str, list[str]]:
    """Per wnid, sorted paths (relative to root) of its official val images."""
    val = root / "val"
    gt_path = check_val_layout(root, wnids)
    if gt_path is None:
        return {wnid: [f"val/{wnid}/{name}" for name in list_images(val / wnid)] for wnid in wnids}
    gt = read_ground_truth(gt_path)
    wanted = set(wnids)
    out = {wnid: [] for wnid in wnids}
    for name in list_images(val):
        stem = Path(name).stem
        if stem not in gt:
            raise ValueError(
                f"{val / name} has no label in {gt_path}; is it the ground truth of this val set?"
            )
        if gt[stem] in wanted:
            out[gt[stem]].append(f"val/{name}")
    return out


def select_rows(
    root: str | os.PathLike[str] | None,
    wnids: Sequence[str],
    per_class: Mapping[str, int],
    seed: int,
) -> dict[str, list[Row]]:
    """All rows of the three splits, class-major, from directory listings alone.

    Within a class, rows are sorted by path, so a shard's content depends only on
    (root listing, classes, split sizes, seed) and never on filesystem order.
    """
    check_imagenet(root, wnids)
    root = Path(root)
    n_train, n_val, n_test = (int(per_class[s]) for s in ("train", "val", "test"))
    rows: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        files = list_images(folder)
        if len(files) < n_train + n_val:
            raise ValueError(
                f"{folder} has {len(files)} images but train+val need {n_train + n_val} "
                f"({n_train}+{n_val}); lower data.splits or drop class {wnid}"
            )
        perm = rng(seed, "imagenet-split", wnid).permutation(len(files))
        picks = {
            "train": sorted(files[i] for i in perm[:n_train]),
            "val": sorted(files[i] for i in perm[n_train : n_train + n_val]),
        }
        for split, names in picks.items():
            rows[split] += [Row(f"train/{wnid}/{n}", label, wnid) for n in names]
    tests = val_files(root, wnids)
    for label, wnid in enumerate(wnids):
        test = tests[wnid]
        if len(test) < n_test:
            raise ValueError(
                f"the official val set has {len(test)} images of class {wnid} but "
                f"data.splits.test needs {n_test}; check val/ and its ground truth"
            )
        if len(test) > n_test:
            keep = rng(seed, "imagenet-test", wnid).choice(len(test), n_test, replace=False)
            test = [test[i] for i in sorted(keep)]
        rows["test"] += [Row(p, label, wnid) for p in test]
    return rows


def load_square(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """The stored pixels of one image file: :func:`synth2real.preprocess.stored_pixels`, the
    path synthetic images take too (short side to ``size``, bicubic, centre crop, RGB).

    ILSVRC images are ~500x375, so going to 256 is a < 2x reduction; the crop keeps the
    aspect ratio and gives every image of a split the same shape.
    """
    return stored_pixels(path, size)


def write_imagenet_shard(
    data: Mapping[str, Any],
    split: str,
    shard: int,
    n_shards: int,
    seed: int,
    out: str | os.PathLike[str],
) -> None:
    """Write shard ``shard`` of ``n_shards`` of the real ImageNet-subset ``split``.

    Same signature as :func:`synth2real.data.real.write_real_shard`. ``data.classes`` is read
    relative to the working directory (the workflow's root), like the Grid does.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = data.get("imagenet_root")
    wnids = [row["wnid"] for row in read_classes(data["classes"])]
    rows = select_rows(root, wnids, data["splits"], seed)[split]
    ranges = list(chunk_rows(len(rows), n_shards))
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is out of range for {n_shards} shards")
    start, stop = ranges[shard]
    part = rows[start:stop]
    size = int(data["image_size"])
    write_shard(
        {
            "image": [store_image(Path(root) / r.source_id, size) for r in part],
            "label": [r.label for r in part],
            "class_id": [r.wnid for r in part],
            "prompt": [""] * len(part),
            "seed": [seed] * len(part),
            "source_id": [r.source_id for r in part],
        },
        out,
    )
