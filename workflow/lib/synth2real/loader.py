"""A torch map-style Dataset over a split's Parquet shards, decoding PNG rows on the fly.

``training.py`` loads a whole split into memory as decoded uint8, which is right for the demo
but not for the paper's 100k-image splits at 256 px (19.7 GB decoded per dataset). This dataset
keeps only the *compressed* PNG bytes (Arrow buffers, ~a third to a half of that) and decodes
each image when it is asked for, so decoding scales with DataLoader workers.

Parquet cannot read one row cheaply (a read decodes a whole column chunk), so a shard's
``image`` and ``label`` columns are read once, on first access, and kept. Two uses:

- ``preload=True`` (default): read every shard in ``__init__``, in the parent process. Forked
  DataLoader workers then share those pages copy-on-write: Arrow buffers carry no per-row
  Python refcounts, so they stay shared. Memory = compressed split size, once.
- ``preload=False``: nothing is read until a worker asks for a row of a shard; each worker
  then holds the shards it has touched. Good for sequential reads (evaluation) of big splits.

No file handle is opened in ``__init__`` with ``preload=False`` and none is kept open, so the
object pickles and is safe under both fork and spawn.
"""

from __future__ import annotations

import bisect
import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import Dataset

from synth2real.shards import shard_files


class ShardImageDataset(Dataset):
    """index -> (image, label): uint8 CHW tensor, or ``transform(PIL image)`` if given."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        transform: Callable[[Image.Image], Any] | None = None,
        preload: bool = True,
    ) -> None:
        self.files = shard_files(paths)
        self.transform = transform
        counts = [pq.ParquetFile(f).metadata.num_rows for f in self.files]
        self.offsets = np.cumsum([0, *counts]).tolist()
        self._cache: dict[int, tuple[pa.Array, np.ndarray]] = {}
        if preload:
            for i in range(len(self.files)):
                self._shard(i)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _shard(self, i: int) -> tuple[pa.Array, np.ndarray]:
        if i not in self._cache:
            table = pq.read_table(self.files[i], columns=["image", "label"])
            images = table.column("image").combine_chunks()
            labels = table.column("label").to_numpy().astype(np.int64)
            self._cache[i] = (images, labels)
        return self._cache[i]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        i = bisect.bisect_right(self.offsets, index) - 1
        images, labels = self._shard(i)
        j = index - self.offsets[i]
        buf = images[j].as_buffer()
        with Image.open(io.BytesIO(buf)) as im:
            im = im.convert("RGB")
        label = int(labels[j])
        if self.transform is not None:
            return self.transform(im), label
        return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1), label
