"""Probes map a shard to a shard of the same rows, with only the pixels changed.

Keeping every other column (labels, seeds, source ids, generator settings) means a probe shard
is still a self-describing dataset shard, and the training and evaluation code can't tell a
probe view from rgb.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from synth2real.frequency import filter_uint8
from synth2real.shards import decode_images, encode_png, read_shard, write_shard


def map_shard(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    transform: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Apply ``transform`` ((N, H, W, 3) uint8 -> same) to a shard's images; write atomically."""
    table = read_shard(in_path)
    images = transform(decode_images(table))
    if images.shape[0] != table.num_rows or images.dtype != np.uint8:
        raise ValueError("a probe must return one uint8 image per input row")
    column = pa.array([encode_png(im) for im in images], type=pa.binary())
    table = table.set_column(table.column_names.index("image"), "image", column)
    write_shard(table, out_path)


def frequency_probe(
    in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], spec: Mapping[str, Any]
) -> None:
    """The lowpass/highpass probe of one shard, as configured in ``probes.<name>``."""
    band = spec["transform"]
    cutoff = float(spec["cutoff"])
    mask = spec.get("mask", "radial")
    map_shard(in_path, out_path, lambda x: filter_uint8(x, band, cutoff, mask))
