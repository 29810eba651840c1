"""The embedded default's real data: scikit-learn's bundled 8x8 handwritten digits.

1,797 real scans ship inside scikit-learn, so the whole benchmark chain can run offline on a
laptop. Real and synthetic digits both live at the 8x8 source size and pass through the *same*
:func:`upscale` before they become RGB shards, so no classifier can tell them apart by the
resizing alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synth2real.seeding import rng

#: Digit pixels in scikit-learn run 0..16.
DIGITS_MAX = 16.0
CLASS_NAMES: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
)  # fmt: skip


def load_digits_array() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as float32 (N, 8, 8) in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / DIGITS_MAX).astype(np.float32)
    return images, bunch.target.astype(np.int64)


def split_indices(
    labels: np.ndarray, per_class: dict[str, int], seed: int
) -> dict[str, np.ndarray]:
    """Pick disjoint per-class index sets for each split, by seed.

    Splits are drawn in the order given (e.g. test, val, train), so growing the train split
    never changes which images are in test.
    """
    out: dict[str, list[int]] = {name: [] for name in per_class}
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        order = rng(seed, "digits-split", int(label)).permutation(idx)
        start = 0
        for name, count in per_class.items():
            if start + count > len(order):
                raise ValueError(
                    f"class {label} has {len(order)} digits; splits {per_class} ask for more"
                )
            out[name].extend(order[start : start + count].tolist())
            start += count
    return {name: np.sort(np.asarray(v, dtype=np.int64)) for name, v in out.items()}


def upscale_float(images: Any, size: int) -> np.ndarray:
    """Map (N, 8, 8) greys in [0, 1] to (N, size, size, 3) float RGB in [0, 1].

    Bilinear upsampling keeps strokes smooth. Real digits and DDPM samples both pass through
    here, then through the same 8-bit rounding, so resizing can't tell them apart.
    """
    import torch  # lazy: class lists and plots import this module without torch
    import torch.nn.functional as F

    x = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    arr = x.clamp(0, 1)[:, 0].numpy()
    return np.repeat(arr[..., None], 3, axis=-1)


def upscale(images: Any, size: int) -> np.ndarray:
    """:func:`upscale_float`, rounded to uint8 as diffusers rounds pipeline output."""
    return (upscale_float(images, size) * 255.0).round().astype(np.uint8)
