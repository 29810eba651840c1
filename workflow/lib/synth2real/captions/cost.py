"""Dry run from real shards: the sizes of the images a captioning run will send.

The token rules and the estimate itself are :mod:`synth2real.caption_cost` (parse-time, so the
workflow's dry run prints the same numbers); this module reads image sizes from Parquet shards
and re-exports the estimate's names, which the captioner and its tests import from here.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable

import pyarrow.parquet as pq
from PIL import Image

from synth2real.caption_cost import (  # noqa: F401
    CostEstimate,
    estimate_cost,
    image_tokens,
    patch_count,
)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an encoded image, read from the PNG header without decoding."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def sample_image_sizes(
    shard_paths: Iterable[str | os.PathLike[str]],
    ids: set[str] | None = None,
    limit: int | None = 2000,
) -> list[tuple[int, int]]:
    """Sizes of up to ``limit`` images of the shards (restricted to ``ids`` if given)."""
    sizes: list[tuple[int, int]] = []
    for path in shard_paths:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(columns=["image", "source_id"], batch_size=256):
            images = batch.column("image").to_pylist()
            sources = batch.column("source_id").to_pylist()
            for data, source in zip(images, sources):
                if ids is not None and str(source) not in ids:
                    continue
                sizes.append(png_size(data))
                if limit is not None and len(sizes) >= limit:
                    return sizes
    return sizes
