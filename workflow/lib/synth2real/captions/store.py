"""Durable caption cache: an fsync'ed append-only journal plus small atomic state files.

Captions cost money and time, so each one is made durable the moment it arrives: one JSON line,
written with a single ``write`` and ``fsync``'ed before the next request is counted as done. A
SIGKILL can then tear at most the line being written, which the reader drops (and the writer
cuts off before appending again). The journal is the cache shared by every run; the Parquet
caption table is compacted from it at the end of a run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from synth2real.io import fsync_dir

log = logging.getLogger("synth2real.captions.runner")

#: The caption table's schema: one row per captioned image, whoever wrote it (the OpenAI
#: captioner, runner; the digits captioner, digits). Its metadata key holds the settings.
TABLE_METADATA_KEY = b"synth2real.captions.runner"

CAPTION_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("class_id", pa.string()),
        ("model", pa.string()),
        ("instruction_hash", pa.string()),
        ("caption", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("mode", pa.string()),
        ("attempts", pa.int32()),
        ("created_at", pa.string()),
    ]
)
#: Columns of the caption table, in order.
CAPTION_COLUMNS: tuple[str, ...] = tuple(CAPTION_SCHEMA.names)

#: Identifies one cached caption: the same image asked the same question of the same model.
CacheKey = tuple[str, str, str]

#: Fields every journal record carries: the caption table's columns.
RECORD_FIELDS: tuple[str, ...] = CAPTION_COLUMNS


def record_key(record: dict[str, Any]) -> CacheKey:
    """The cache key of a journal record."""
    return (str(record["image_id"]), str(record["model"]), str(record["instruction_hash"]))


class CaptionJournal:
    """Append-only JSON-lines journal of finished captions (one line per caption).

    Reading tolerates a torn last line; opening for append first truncates such a tail so that a
    new record never gets glued to half of an old one.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def load(self) -> dict[CacheKey, dict[str, Any]]:
        """All intact records, first one per key wins (a key is never journaled twice)."""
        records: dict[CacheKey, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        torn_tail = lines.pop() if lines else b""
        if torn_tail.strip():
            log.warning("caption journal %s ends with a torn line; ignoring it", self.path)
        bad = 0
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record_key(record)
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            records.setdefault(key, record)
        if bad:
            log.warning("caption journal %s: skipped %d unreadable line(s)", self.path, bad)
        return records

    def open(self) -> None:
        """Open for appending, cutting a torn tail left by a killed writer."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        # Another captioning process may share the cache: hold the lock while checking the tail
        # so that no one cuts a line someone else is writing. Appends are single writes.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            self._repair_tail(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._fd = fd
        if created:
            fsync_dir(self.path.parent)

    def _repair_tail(self, fd: int) -> None:
        """Cut a torn last line (no newline at the end) left by a killed writer."""
        size = os.fstat(fd).st_size
        if size:
            tail_start = max(0, size - (1 << 16))
            os.lseek(fd, tail_start, os.SEEK_SET)
            tail = os.read(fd, size - tail_start)
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = tail_start + cut + 1 if cut >= 0 else self._last_newline(fd, tail_start)
                os.ftruncate(fd, keep)
                os.fsync(fd)

    @staticmethod
    def _last_newline(fd: int, before: int) -> int:
        """Offset just past the last newline before ``before`` (0 if none): a slow fallback."""
        pos = before
        while pos > 0:
            start = max(0, pos - (1 << 16))
            os.lseek(fd, start, os.SEEK_SET)
            chunk = os.read(fd, pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            pos = start
        return 0

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (single write + fsync) before returning."""
        self.append_many([record])

    def append_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Append several records with one fsync at the end (used when a batch is collected)."""
        if self._fd is None:
            self.open()
        assert self._fd is not None
        count = 0
        for record in records:
            line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode()
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            count += 1
        if count:
            os.fsync(self._fd)
        return count

    def close(self) -> None:
        """Close the file descriptor (records are already on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CaptionJournal:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON file, or return ``default`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return default
    return json.loads(path.read_text())
