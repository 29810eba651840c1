"""Files that appear whole or not at all: the one place every output of the workflow is written.

A job killed half way (SIGKILL, preemption, a full disk) must never leave a file that the next
run would take for finished output, because Snakemake only checks that an output exists. Every
writer in the library and the scripts therefore goes through :func:`atomic_output`. Nothing
heavy is imported here (pandas and pyarrow only inside the writers that need them), so light
scripts and parse-time code can use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary file that appears at ``path`` whole, or not at all.

    Where the filesystem supports it (Linux ``O_TMPFILE``: ext4, xfs, btrfs, tmpfs), the data
    goes to an *unnamed* file in the target directory, which is linked into place only once it
    is complete and fsynced. A writer killed even by SIGKILL leaves nothing behind: the kernel
    frees the unnamed file. Elsewhere (e.g. NFS) it falls back to a dot-named temp file, which
    the next writer of the same path removes (:func:`remove_stale_temps`). The directory is
    fsynced after the rename, so a file that a finished job reported survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd = -1
    if hasattr(os, "O_TMPFILE"):
        try:
            fd = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o644)
        except OSError:
            fd = -1
    named = None
    if fd < 0:
        fd, named = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            if named is None:
                _, named = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                os.unlink(named)
                _link_unnamed(fh.fileno(), Path(named))
        os.replace(named, path)
        fsync_dir(path.parent)
    except BaseException:
        if named is not None:
            Path(named).unlink(missing_ok=True)
        raise


def _link_unnamed(fd: int, target: Path) -> None:
    """Give an O_TMPFILE file a name. A non-default dir fd makes CPython call linkat()
    with AT_SYMLINK_FOLLOW, which resolves the /proc fd link (plain link() would not)."""
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(f"/proc/self/fd/{fd}", target.name, dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)


def remove_stale_temps(path: str | os.PathLike[str]) -> None:
    """Delete temp files that a killed writer of ``path`` left (fallback mode only)."""
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def write_table_atomic(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write any Arrow table as Parquet to ``path``, whole or not at all."""
    import pyarrow.parquet as pq

    with atomic_output(path) as fh:
        pq.write_table(table, fh, compression="zstd", write_statistics=False)
    return Path(path)


def write_csv_atomic(
    frame: pd.DataFrame, path: str | os.PathLike[str], float32: bool = False, **options: Any
) -> Path:
    """Write ``frame`` as CSV without its index, whole or not at all.

    ``float32``: a table of metrics; its float columns are written at float32 precision
    (:func:`float32_decimal`). ``options`` go to ``DataFrame.to_csv`` (e.g. ``sep="\\t"``).
    """
    if float32:
        frame = frame.copy()
        for column in frame.columns:
            if frame[column].dtype.kind == "f":
                frame[column] = frame[column].map(float32_decimal)
    return atomic_write_bytes(path, frame.to_csv(index=False, **options).encode())


def float32_decimal(value: float) -> float:
    """``value`` at float32 precision: the shortest decimal that reads back as the same
    float32, as a Python float (which prints as that decimal: ``0.944``, not
    ``0.9440000057220459``; NaN and infinities pass through).

    The one precision rule of the metric tables (``summary.csv``, ``distribution.csv``,
    ``tables/``): every value in them is a float32 quantity or carries less, such as an
    accuracy computed in float32 or a share of at most millions of images, so seven or so
    significant digits are all it has. Read back, a value equals the original as a float32.
    """
    import numpy as np

    return float(str(np.float32(value)))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path``, whole or not at all."""
    with atomic_output(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (state files, reports)."""
    text = json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode())


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file durable by syncing its directory (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
