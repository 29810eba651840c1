"""Probes map a shard to a shard of the same rows, with only the pixels changed.

Keeping every other column (labels, seeds, source ids, generator settings) means a probe shard
is still a self-describing dataset shard, and the training and evaluation code can't tell a
probe view from rgb.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from synth2real.probes.frequency import filter_images
from synth2real.shards import PIXEL_DTYPES, decode_images, encode_image, read_shard, write_shard


def map_shard(
    in_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    transform: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Apply ``transform`` ((N, H, W, 3) pixels -> (N, H', W', 3) uint8 or uint16) to a
    shard's images; write atomically, each row in :func:`synth2real.shards.encode_image`'s
    codec for its dtype."""
    table = read_shard(in_path)
    images = transform(decode_images(table))
    if images.shape[0] != table.num_rows or images.dtype not in PIXEL_DTYPES:
        raise ValueError("a probe must return one uint8 or uint16 image per input row")
    column = pa.array([encode_image(im) for im in images], type=pa.binary())
    table = table.set_column(table.column_names.index("image"), "image", column)
    write_shard(table, out_path)


def map_split(
    shards: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    probe: Callable[[str, str], None],
) -> list[Path]:
    """Run ``probe(in_shard, out_shard)`` for every shard of a split into ``out_dir``.

    Output shards keep their input names, so shard ``i`` of a probe view holds the same rows
    as shard ``i`` of the rgb data. Existing outputs (each written atomically) are kept, which
    lets a resumed job skip the shards it already finished.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = []
    for src in tqdm(list(shards), desc=f"probe -> {out_dir}", unit="shard", mininterval=10):
        dst = out_dir / Path(src).name
        if not dst.exists():
            probe(str(src), str(dst))
        outs.append(dst)
    return outs


def frequency_probe(
    in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], spec: Mapping[str, Any]
) -> None:
    """The lowpass/highpass probe of one shard, as configured in ``probes.<name>``."""
    band, cutoff, mask, bits = spec["transform"], float(spec["cutoff"]), spec["mask"], spec["bits"]
    map_shard(in_path, out_path, lambda x: filter_images(x, band, cutoff, mask, bits))
