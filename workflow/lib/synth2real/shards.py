"""The dataset contract: a split is a list of Parquet shards of encoded image rows.

Real and synthetic data share this one on-disk format, so every downstream rule (probes,
training, evaluation, metrics) is blind to where its images came from. Shards are written to a
temporary name in the target directory and renamed into place, so a shard exists whole or not
at all, even if the writer is killed (SIGKILL, preemption) half way through.

Rows hold 8-bit RGB as PNG (real and synthetic data, depth maps). Frequency probe views may hold
16-bit RGB instead, because the high-pass band is a few grey levels and 8 bits would quantise
it away; PIL cannot write 16-bit RGB PNG, so those rows are NumPy ``.npy`` bytes (lossless,
self-describing; the shard's zstd compresses them). :func:`encode_image` and
:func:`decode_image` are the one codec: the decoder tells the two apart by their magic bytes,
so every reader takes either, and the decoded array's dtype carries the scale
(:func:`pixel_max`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from synth2real.io import write_table_atomic

#: Columns every shard must carry. Extra columns (generator settings, guidance, ...) are kept.
REQUIRED_COLUMNS: tuple[str, ...] = ("image", "label", "class_id", "prompt", "seed", "source_id")

_TYPES: dict[str, pa.DataType] = {
    "image": pa.binary(),
    "label": pa.int32(),
    "class_id": pa.string(),
    "prompt": pa.string(),
    "seed": pa.int64(),
    "source_id": pa.string(),
}


#: Stored pixel dtypes: uint8 (PNG rows) and uint16 (``.npy`` rows of frequency probe views).
PIXEL_DTYPES: tuple[type[np.integer], ...] = (np.uint8, np.uint16)
_NPY_MAGIC = b"\x93NUMPY"


class ShardError(ValueError):
    """A shard (or the rows meant for one) breaks the dataset contract."""


def pixel_max(dtype: np.dtype | type) -> int:
    """Full-scale value of a stored pixel dtype (255 or 65535): decoded / this is in [0, 1]."""
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(d) for d in PIXEL_DTYPES]:
        raise ShardError(f"stored pixels are uint8 or uint16, got {dtype}")
    return int(np.iinfo(dtype).max)


def encode_png(image: np.ndarray) -> bytes:
    """Losslessly encode an HxW or HxWx3 uint8 array as PNG bytes (deterministic settings)."""
    if image.dtype != np.uint8:
        raise ShardError(f"images must be uint8, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes to an HxWx3 uint8 array (grey images are replicated to RGB)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_image(image: np.ndarray) -> bytes:
    """Losslessly encode an HxWx3 uint8 (as PNG) or uint16 (as ``.npy``) image."""
    if image.dtype == np.uint8:
        return encode_png(image)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[-1] != 3:
        raise ShardError(f"images must be uint8, or HxWx3 uint16; got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image), allow_pickle=False)  # C order: same bytes always
    return buf.getvalue()


def decode_image(data: bytes | memoryview) -> np.ndarray:
    """Decode a row written by :func:`encode_image`: HxWx3 uint8 (PNG) or uint16 (``.npy``)."""
    if bytes(memoryview(data)[: len(_NPY_MAGIC)]) != _NPY_MAGIC:
        return decode_png(data)
    image = np.load(io.BytesIO(data), allow_pickle=False)
    if image.dtype != np.uint16 or image.ndim != 3 or image.shape[-1] != 3:
        raise ShardError(f"a .npy row must be HxWx3 uint16, got {image.dtype} {image.shape}")
    return image


def make_table(columns: Mapping[str, Sequence[object]]) -> pa.Table:
    """Build a contract-conforming Arrow table; raise :class:`ShardError` naming what is off."""
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ShardError(f"shard rows lack required column(s): {', '.join(missing)}")
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ShardError(f"shard columns have different lengths: {lengths}")
    arrays = {
        name: pa.array(list(values), type=_TYPES.get(name)) for name, values in columns.items()
    }
    return pa.table(arrays)


def write_shard(
    columns: Mapping[str, Sequence[object]] | pa.Table, path: str | os.PathLike[str]
) -> Path:
    """Validate rows against the contract and write them atomically as one shard."""
    table = columns if isinstance(columns, pa.Table) else make_table(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ShardError(f"shard rows lack required column(s): {', '.join(missing)}")
    return write_table_atomic(table, path)


def read_shard(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Read one shard (optionally a subset of columns)."""
    return pq.read_table(path, columns=columns)


def read_images(path: str | os.PathLike[str], rows: Sequence[int]) -> list[np.ndarray]:
    """The decoded images of ``rows`` of one shard, in the order given.

    The image column is streamed in small batches and left after the last row asked for, so
    a few sample rows cost about one Parquet page of PNG bytes in memory, not the shard's
    whole image column (a paper shard holds 2,000 PNGs).
    """
    wanted = sorted(set(int(r) for r in rows))
    found: dict[int, np.ndarray] = {}
    if wanted:
        reader = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        start = 0
        for batch in reader.iter_batches(batch_size=64, columns=["image"]):
            column = batch.column(0)
            for r in wanted:
                if start <= r < start + len(batch):
                    found[r] = decode_png(column[r - start].as_py())
            start += len(batch)
            if start > wanted[-1]:
                break
    missing = [r for r in wanted if r not in found]
    if missing:
        raise ShardError(f"{path} has no row {missing[0]} ({start} rows)")
    return [found[int(r)] for r in rows]


def shard_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand a list of shard files and split directories (probe views) into shard files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("shard-*.parquet"))
            if not found:
                raise ShardError(f"{p} holds no shard-*.parquet files")
            out.extend(found)
        else:
            out.append(p)
    return out


def read_shards(
    paths: Sequence[str | os.PathLike[str]], columns: list[str] | None = None
) -> pa.Table:
    """Concatenate the shards of a split, in the given order."""
    files = shard_files(paths)
    if not files:
        raise ShardError("no shards given")
    return pa.concat_tables([read_shard(p, columns) for p in files])


def decode_images(table: pa.Table) -> np.ndarray:
    """Decode a table's ``image`` column to an (N, H, W, 3) uint8 or uint16 array."""
    images = [decode_image(b) for b in table.column("image").to_pylist()]
    if not images:
        raise ShardError("table has no rows")
    return np.stack(images)


def load_split(paths: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, 3) uint8 (uint16 for 16-bit probe views) and labels (N,) of a split."""
    table = read_shards(paths, ["image", "label"])
    return decode_images(table), table.column("label").to_numpy().astype(np.int64)


def chunk_rows(n_rows: int, n_shards: int) -> Iterator[tuple[int, int]]:
    """Split ``n_rows`` into ``n_shards`` contiguous near-equal [start, stop) ranges."""
    if n_shards < 1:
        raise ShardError("a split needs at least one shard")
    edges = np.linspace(0, n_rows, n_shards + 1).round().astype(int)
    for start, stop in zip(edges[:-1], edges[1:]):
        yield int(start), int(stop)
