"""A tiny ILSVRC2012-style folder of real JPEGs for the rehearsal (``make rehearsal``).

Layout (what synth2real.data.imagenet reads): ``train/<wnid>/<wnid>_<k>.JPEG`` for every class
of a classes TSV, and the official val set flat, ``val/ILSVRC2012_val_<k>.JPEG``, labelled by
``val/val_labels.txt``. Each image is a small JPEG of uneven size (the loader resizes the short
side and crops), a class colour with seeded noise, so the classifiers have something to learn.
The same seed writes the same bytes; an existing complete tree is left as it is.

    python tests/make_imagenet_fixture.py --root DIR --classes config/classes.tsv --train 5 --val 1
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "lib"))
from synth2real.grid import read_classes  # noqa: E402 (the checkout's library)

SIZES = ((40, 32), (32, 44), (36, 36))


def jpeg(rng: np.random.Generator, colour: np.ndarray, size: tuple[int, int]) -> bytes:
    """A ``size`` (w, h) JPEG: the class colour, a brighter square at a random spot, noise."""
    w, h = size
    img = np.broadcast_to(colour, (h, w, 3)).astype(np.float32)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y : y + h // 2, x : x + w // 2] += 60.0
    img += rng.normal(0.0, 20.0, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def build(root: Path, classes: Path, train: int, val: int, seed: int) -> int:
    """Write the tree under ``root``; return the number of images written."""
    wnids = [row["wnid"] for row in read_classes(classes)]
    done = root / ".complete"
    stamp = f"{len(wnids)} {train} {val} {seed}\n"
    if done.exists() and done.read_text() == stamp:
        return 0
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 200, (len(wnids), 3)).astype(np.float32)
    (root / "val").mkdir(parents=True, exist_ok=True)
    labels, n = [], 0
    for c, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(train):
            (folder / f"{wnid}_{k}.JPEG").write_bytes(jpeg(rng, colours[c], SIZES[k % 3]))
            n += 1
        for k in range(val):
            name = f"ILSVRC2012_val_{c * val + k + 1:08d}.JPEG"
            (root / "val" / name).write_bytes(jpeg(rng, colours[c], SIZES[(c + k) % 3]))
            labels.append(f"{name} {wnid}\n")
            n += 1
    (root / "val" / "val_labels.txt").write_text("".join(labels))
    done.write_text(stamp)
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--classes", type=Path, default=Path("config/classes.tsv"))
    p.add_argument("--train", type=int, default=5, help="train images per class")
    p.add_argument("--val", type=int, default=1, help="official val images per class")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    n = build(args.root, args.classes, args.train, args.val, args.seed)
    print(f"{args.root}: {n} images written" if n else f"{args.root}: up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
