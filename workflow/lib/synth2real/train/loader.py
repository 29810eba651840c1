"""A torch map-style Dataset over a split's Parquet shards, decoding rows on the fly.

Rows are decoded by :func:`synth2real.shards.decode_image`, so a split of 8-bit PNG rows gives
uint8 images and a 16-bit probe view uint16 ones, through every path below (the decoded cache
keeps the split's dtype).

:mod:`synth2real.train.data` can load a whole split into memory as decoded uint8, which is
right for the demo but not for the paper's 100k-image splits at 256 px (19.7 GB decoded per
dataset). This dataset keeps only the *compressed* PNG bytes (Arrow buffers, ~a third to a half
of that) and decodes each image when it is asked for, so decoding scales with DataLoader
workers.

Parquet cannot read one row cheaply (a read decodes a whole column chunk), so a shard's
``image`` and ``label`` columns are read once, on first access, and kept. Two uses:

- ``preload=True`` (default): read every shard in ``__init__``, in the parent process. Forked
  DataLoader workers then share those pages copy-on-write: Arrow buffers carry no per-row
  Python refcounts, so they stay shared. Memory = compressed split size, once.
- ``preload=False``: nothing is read until a worker asks for a row of a shard; each worker
  then holds the shards it has touched. Good for sequential reads (evaluation) of big splits.

No file handle is opened in ``__init__`` with ``preload=False`` and none is kept open, so the
object pickles and is safe under both fork and spawn.

The training input paths (:mod:`synth2real.train.data`) build on it:

- :func:`build_decoded_cache` / :class:`DecodedCacheDataset`: decode a split once into a
  node-local uint8 memmap, because per-item PNG decoding is the loader's bottleneck
  (``tools/bench_loader.py``);
- :class:`MemorySource`: a split already decoded in RAM, same interface;
- :class:`AugmentedDataset` + :class:`EpochBatchSampler`: indices travel as (epoch, index)
  so persistent workers know the epoch, and each DDP rank takes its share of every *global*
  batch.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from synth2real.seeding import derive_seed
from synth2real.shards import decode_image, shard_files


class ShardImageDataset(Dataset):
    """index -> (image, label): uint8/uint16 CHW tensor, or ``transform(PIL image)`` if given
    (8-bit rows only: PIL has no 16-bit RGB)."""

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
        image = decode_image(images[j].as_buffer())
        label = int(labels[j])
        if self.transform is not None:
            return self.transform(Image.fromarray(image)), label
        return torch.from_numpy(image.copy()).permute(2, 0, 1), label

    def labels(self) -> np.ndarray:
        """All labels of the split, in row order (reads the label column of unread shards)."""
        parts = []
        for i, f in enumerate(self.files):
            if i in self._cache:
                parts.append(self._cache[i][1])
            else:
                parts.append(pq.read_table(f, columns=["label"]).column("label").to_numpy())
        return np.concatenate(parts).astype(np.int64)


def split_rows(paths: Sequence[str | os.PathLike[str]]) -> int:
    """Row count of a split from Parquet metadata (reads no data)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in shard_files(paths))


def first_image(paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
    """A split's first image, decoded: the contract says all rows of a split share its size
    and dtype."""
    table = pq.read_table(shard_files(paths)[0], columns=["image"]).slice(0, 1)
    return decode_image(table.column("image")[0].as_py())


def first_image_shape(paths: Sequence[str | os.PathLike[str]]) -> tuple[int, int]:
    """(H, W) of a split's first image: the contract says all rows of a split share it."""
    h, w = first_image(paths).shape[:2]
    return h, w


class MemorySource(Dataset):
    """A decoded split held in memory: index -> (uint8 CHW view, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self._labels = images, labels

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> np.ndarray:
        return self._labels.numpy()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].permute(2, 0, 1), int(self._labels[index])


def _cache_key(files: Sequence[os.PathLike[str]]) -> str:
    """Identity of a split's bytes: paths, sizes and mtimes (a rewritten shard changes it)."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.abspath(f)}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def build_decoded_cache(
    paths: Sequence[str | os.PathLike[str]],
    cache_root: str | os.PathLike[str],
    workers: int = 0,
) -> Path:
    """Decode a split once into ``cache_root/<key>/`` (N×H×W×3 in the split's dtype, uint8
    or uint16, + labels); reuse after.

    Why: PNG decoding is the input pipeline's bottleneck (docs/training.md, loader benchmark).
    A decoded uint8 copy (~20 GB per 100k images at 256 px) on node-local disk is read through
    the page cache, shared by all workers and by later jobs on the node, and costs no decoding.
    The entry is built in a temp directory and renamed into place: it exists whole or not at
    all, and two jobs racing to build it both end up using one complete copy. ``workers``
    decode in parallel through a DataLoader. The key covers shard paths, sizes and mtimes.
    """
    files = shard_files(paths)
    root = Path(os.path.expanduser(os.path.expandvars(str(cache_root))))
    if "$" in str(root):
        raise ValueError(f"decoded cache dir {cache_root!r} names an unset environment variable")
    final = root / _cache_key(files)
    if (final / "meta.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    source = ShardImageDataset(files, preload=False)
    n = len(source)
    first = first_image(files)
    (h, w), dtype = first.shape[:2], first.dtype
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        mm = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=dtype, shape=(n, h, w, 3)
        )
        labels = np.empty(n, dtype=np.int64)
        loader = DataLoader(source, batch_size=64, num_workers=workers, collate_fn=_stack_chw)
        row = 0
        for images, ys in tqdm(loader, desc=f"decoding {n} images to {final}", mininterval=10):
            if images.shape[1:3] != (h, w) or images.numpy().dtype != dtype:
                raise ValueError(
                    f"{files}: images of different sizes or dtypes "
                    f"({tuple(images.shape[1:3])} {images.dtype} vs {(h, w)} {dtype})"
                )
            mm[row : row + len(ys)] = images.numpy()
            labels[row : row + len(ys)] = ys.numpy()
            row += len(ys)
        mm.flush()
        del mm
        np.save(tmp / "labels.npy", labels)
        (tmp / "meta.json").write_text(
            json.dumps({"n": n, "h": h, "w": w, "files": [str(f) for f in files]})
        )
        try:
            os.rename(tmp, final)
        except OSError:  # another job finished the same entry first: use theirs
            if not (final / "meta.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _stack_chw(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate CHW images into an NHWC batch (the cache's layout)."""
    images = torch.stack([im.permute(1, 2, 0) for im, _ in batch])
    return images, torch.tensor([y for _, y in batch], dtype=torch.int64)


class DecodedCacheDataset(Dataset):
    """index -> (CHW tensor in the entry's dtype, label) from a :func:`build_decoded_cache`
    entry.

    The memmap is opened lazily in each process, so the object pickles small and forked or
    spawned workers all read the same page-cache pages.
    """

    def __init__(self, entry: str | os.PathLike[str]) -> None:
        self.entry = Path(entry)
        self._labels = np.load(self.entry / "labels.npy")
        self._images: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> np.ndarray:
        return self._labels

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_images": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._images is None:
            self._images = np.load(self.entry / "images.npy", mmap_mode="r")
        image = torch.from_numpy(np.array(self._images[index]))
        return image.permute(2, 0, 1), int(self._labels[index])


class AugmentedDataset(Dataset):
    """(epoch, index) -> (transformed image, label), seeded per image.

    The key carries the epoch because persistent DataLoader workers keep their own copy of
    the dataset: an epoch counter set on the parent's copy would never reach them.
    """

    def __init__(self, source: Dataset, transform: Callable[..., torch.Tensor]) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        image, label = self.source[index]
        return self.transform(image, epoch, index), label


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """This rank's part of each global batch of a seeded per-epoch permutation.

    Global batch k is ``perm[k*B:(k+1)*B]`` whatever the number of ranks; rank r takes its
    rows ``r::world``. So one process and N DDP processes see the same global batches (the
    DDP test relies on it), and an epoch's order depends only on (seed, epoch). A last global
    batch smaller than ``world`` is dropped (every rank must take part in each step).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[torch.Tensor]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", self.epoch))
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        return [b for b in order.split(self.batch_size) if len(b) >= self.world]

    def __len__(self) -> int:
        return len(self.global_batches())

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches():
            yield [(self.epoch, int(i)) for i in batch[self.rank :: self.world]]
