"""Recaption real images with an OpenAI(-compatible) vision model (issue 4).

The paper's "detailed captions" condition prompts each generator with ``"[class name],
[caption]"``, where the caption comes from recaptioning the real training image with
GPT-4.1-nano. This module turns real-data shards into caption tables, one per group of shards
(the workflow's real splits: train, and val and test with ``captions.held_out``, whose captions
prompt the synthetic val and test splits), all requested in one pass:

* every caption is journaled durably the moment it arrives (see :mod:`.store`), so a
  killed run loses nothing already paid for, and a rerun asks only for what is missing;
* ``mode="online"`` sends concurrent requests with its own retry budget
  (:mod:`.online`), ``mode="batch"`` uses the half-price Batch API and resumes its
  batches after a restart (:mod:`.batch`);
* images that still have no usable caption when their retries run out are written to a
  failures report, never dropped;
* :func:`dry_run` estimates requests, tokens and dollars before anything is sent
  (:mod:`.cost`); :mod:`.prompts` counts the generator prompts
  CLIP would truncate.

The API key is read from ``OPENAI_API_KEY`` only, and never stored in settings, tables or logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import openai
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from synth2real.captions.batch import BatchCaptioner
from synth2real.captions.core import (
    INSTRUCTION_PRESETS,
    CaptionError,
    CaptionItem,
    CaptionSettings,
    Failure,
    Prices,
)
from synth2real.captions.cost import CostEstimate, estimate_cost, sample_image_sizes
from synth2real.captions.online import caption_online
from synth2real.captions.prompts import load_clip_tokenizer, prompt_token_stats
from synth2real.captions.store import (
    CAPTION_COLUMNS,
    CAPTION_SCHEMA,
    TABLE_METADATA_KEY,
    CaptionJournal,
)
from synth2real.input_checks import NO_KEY, check_openai_key
from synth2real.io import write_csv_atomic, write_table_atomic

__all__ = [
    "INSTRUCTION_PRESETS",
    "CAPTION_COLUMNS",
    "FAILURE_COLUMNS",
    "CaptionError",
    "CaptionRunResult",
    "CaptionSettings",
    "CostEstimate",
    "Prices",
    "caption_images",
    "caption_tables",
    "dry_run",
    "index_images",
    "iter_images",
    "load_clip_tokenizer",
    "make_client",
    "prompt_token_stats",
    "read_captions",
]

log = logging.getLogger("synth2real.captions.runner")

JOURNAL_NAME = "journal.jsonl"
#: Columns of the failures report (CSV).
FAILURE_COLUMNS: tuple[str, ...] = ("image_id", "class_id", "reason", "attempts", "detail")


@dataclass(frozen=True)
class CaptionRunResult:
    """What one :func:`caption_images` call did."""

    n_images: int
    n_cached: int
    n_new: int
    n_failed: int
    input_tokens: int
    output_tokens: int


def index_images(shard_paths: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """Image ids (the shards' ``source_id``) and class ids, in shard order; ids must be unique.

    Only the two small columns are read, so indexing 100k images does not load any pixels.
    """
    if not shard_paths:
        raise CaptionError("no shards given")
    parts = [pq.read_table(p, columns=["source_id", "class_id"]) for p in shard_paths]
    table = pa.concat_tables(parts)
    frame = pd.DataFrame(
        {
            "image_id": [str(v) for v in table.column("source_id").to_pylist()],
            "class_id": [str(v) for v in table.column("class_id").to_pylist()],
        }
    )
    duplicated = frame["image_id"][frame["image_id"].duplicated()]
    if len(duplicated):
        raise CaptionError(
            f"source_id is not unique across the shards: {', '.join(duplicated[:5])}"
        )
    return frame


def iter_images(
    shard_paths: Sequence[str | os.PathLike[str]], ids: set[str] | None = None, batch_size: int = 64
) -> Iterator[CaptionItem]:
    """Stream the images of the shards (only ``ids`` if given), a few rows at a time."""
    for path in shard_paths:
        parquet = pq.ParquetFile(path)
        columns = ["image", "class_id", "source_id"]
        for batch in parquet.iter_batches(columns=columns, batch_size=batch_size):
            sources = batch.column("source_id").to_pylist()
            classes = batch.column("class_id").to_pylist()
            images = batch.column("image")
            for row, (source, class_id) in enumerate(zip(sources, classes)):
                if ids is None or str(source) in ids:
                    yield CaptionItem(str(source), str(class_id), images[row].as_py())


def make_client(settings: CaptionSettings) -> openai.AsyncOpenAI:
    """An async client with the client's own retries off (the budget is ours).

    The key comes from ``OPENAI_API_KEY`` only; ``base_url`` points at any OpenAI-compatible
    server (None = OpenAI). Without a key, a server other than OpenAI's is asked with a
    placeholder: a local server typically needs none.
    """
    try:
        check_openai_key(settings.base_url)
    except ValueError as exc:
        raise CaptionError(str(exc)) from None
    key = os.environ.get("OPENAI_API_KEY") or NO_KEY
    return openai.AsyncOpenAI(
        api_key=key, base_url=settings.base_url, max_retries=0, timeout=settings.timeout_s
    )


def _journal(cache_dir: str | os.PathLike[str]) -> CaptionJournal:
    return CaptionJournal(Path(cache_dir) / JOURNAL_NAME)


def _cached(
    journal: CaptionJournal, settings: CaptionSettings, ids: Sequence[str]
) -> dict[str, dict]:
    records = journal.load()
    found = {}
    for image_id in ids:
        record = records.get((image_id, settings.model, settings.instruction_hash))
        if record is not None:
            found[image_id] = record
    return found


def caption_images(
    shard_paths: Sequence[str | os.PathLike[str]],
    captions_path: str | os.PathLike[str],
    failures_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    settings: CaptionSettings,
    *,
    progress: bool = True,
    client: openai.AsyncOpenAI | None = None,
) -> CaptionRunResult:
    """Caption every image of the shards into one table: :func:`caption_tables` with one."""
    return caption_tables(
        {captions_path: shard_paths},
        failures_path,
        cache_dir,
        settings,
        progress=progress,
        client=client,
    )


def caption_tables(
    tables: Mapping[str | os.PathLike[str], Sequence[str | os.PathLike[str]]],
    failures_path: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    settings: CaptionSettings,
    *,
    progress: bool = True,
    client: openai.AsyncOpenAI | None = None,
) -> CaptionRunResult:
    """Caption every image of the shards, reusing the cache; write the tables and the report.

    ``tables`` maps each caption table to write to the shards it describes (e.g. one per real
    split). All images are requested in one pass, so a batch run waits for its batches once,
    and image ids must be unique across all shards (they key the cache). Each caption table
    (Parquet, :data:`CAPTION_COLUMNS`, shard order) holds one row per image of its shards that
    has a caption; every other image is in the one failures report (CSV,
    :data:`FAILURE_COLUMNS`). All are written even when some images failed; afterwards a
    :class:`CaptionError` is raised if more than ``max_failure_fraction`` of them failed.
    """
    groups = {path: list(index_images(shards)["image_id"]) for path, shards in tables.items()}
    shard_paths = [shard for shards in tables.values() for shard in shards]
    index = index_images(shard_paths)
    ids = list(index["image_id"])
    class_of = dict(zip(index["image_id"], index["class_id"]))
    journal = _journal(cache_dir)
    cached = _cached(journal, settings, ids)
    pending = {i: class_of[i] for i in ids if i not in cached}
    log.info(
        "captioning %d image(s) with %s (%s mode, instruction %s): %d cached, %d to request",
        len(ids),
        settings.model,
        settings.mode,
        settings.instruction_hash,
        len(cached),
        len(pending),
    )
    failures: list[Failure] = []
    n_new = 0
    if pending:
        n_new, failures = _request_captions(
            shard_paths, pending, set(cached), journal, cache_dir, settings, client, progress
        )
    records = _cached(journal, settings, ids)
    for path, group in groups.items():
        found = [records[i] for i in group if i in records]
        write_table_atomic(captions_table(found, class_of, settings), path)
    done = [records[i] for i in ids if i in records]
    failures = _every_missing_image(failures, ids, records, class_of)
    write_failures(failures, failures_path)
    result = CaptionRunResult(
        n_images=len(ids),
        n_cached=len(cached),
        n_new=n_new,
        n_failed=len(failures),
        input_tokens=sum(int(r.get("input_tokens") or 0) for r in done),
        output_tokens=sum(int(r.get("output_tokens") or 0) for r in done),
    )
    log.info(
        "captions: %d image(s), %d cached, %d new, %d failed",
        result.n_images,
        result.n_cached,
        result.n_new,
        result.n_failed,
    )
    if ids and len(failures) > settings.max_failure_fraction * len(ids):
        raise CaptionError(
            f"{len(failures)} of {len(ids)} image(s) have no caption "
            f"(more than max_failure_fraction={settings.max_failure_fraction}); "
            f"see {failures_path}; a rerun retries them"
        )
    return result


def _request_captions(
    shard_paths: Sequence[str | os.PathLike[str]],
    pending: dict[str, str],
    cached: set[str],
    journal: CaptionJournal,
    cache_dir: str | os.PathLike[str],
    settings: CaptionSettings,
    client: openai.AsyncOpenAI | None,
    progress: bool,
) -> tuple[int, list[Failure]]:
    """Request captions of the ``pending`` images (id -> class), online or as batch jobs, into
    ``journal``: (new captions, failures). Closes the client if it made it."""
    owns_client = client is None
    client = client or make_client(settings)
    bar = tqdm(
        total=len(pending), desc="captions", unit="img", disable=not progress, mininterval=2.0
    )

    def tick(ok: bool) -> None:
        bar.update(1)

    async def run() -> tuple[int, list[Failure]]:
        try:
            if settings.mode == "online":
                items = iter_images(shard_paths, set(pending))
                return await caption_online(items, settings, journal, client, on_finished=tick)
            runner = BatchCaptioner(settings, journal, client, Path(cache_dir), on_finished=tick)
            return await runner.run(
                pending, lambda wanted: iter_images(shard_paths, wanted), cached
            )
        finally:
            if owns_client:
                await client.close()

    try:
        with journal:
            return asyncio.run(run())
    finally:
        bar.close()


def _every_missing_image(
    failures: list[Failure],
    ids: Sequence[str],
    records: dict[str, dict],
    class_of: dict[str, str],
) -> list[Failure]:
    """The failures report in shard order, with every image lacking a caption in it."""
    failed_ids = {f.image_id for f in failures}
    unanswered = [i for i in ids if i not in records and i not in failed_ids]
    for image_id in unanswered:  # defensive: nothing may vanish between the two outputs
        failures.append(Failure(image_id, class_of[image_id], "unanswered", 0))
    order = {image_id: n for n, image_id in enumerate(ids)}
    failures.sort(key=lambda f: order[f.image_id])
    return failures


def captions_table(
    records: Sequence[dict], class_of: dict[str, str], settings: CaptionSettings
) -> pa.Table:
    """The caption table from journal records; the run's settings go in the schema metadata."""
    columns: dict[str, list] = {name: [] for name in CAPTION_COLUMNS}
    for record in records:
        for name in CAPTION_COLUMNS:
            value = record.get(name)
            if name == "class_id":
                value = class_of.get(record["image_id"], value)
            columns[name].append(value)
    meta = {
        "instruction": settings.instruction_text,
        "settings": settings.to_public_dict(),
    }
    schema = CAPTION_SCHEMA.with_metadata({TABLE_METADATA_KEY: json.dumps(meta).encode()})
    return pa.table(columns, schema=schema)


def write_failures(failures: Sequence[Failure], path: str | os.PathLike[str]) -> Path:
    """Atomically write the failures report (CSV; a header only when nothing failed)."""
    frame = pd.DataFrame(
        [[f.image_id, f.class_id, f.reason, f.attempts, f.detail] for f in failures],
        columns=list(FAILURE_COLUMNS),
    )
    return write_csv_atomic(frame, path)


def read_captions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a caption table as a DataFrame."""
    return pq.read_table(path).to_pandas()


def dry_run(
    shard_paths: Sequence[str | os.PathLike[str]],
    settings: CaptionSettings,
    cache_dir: str | os.PathLike[str] | None = None,
    sample: int | None = 2000,
) -> CostEstimate:
    """Estimate the requests, tokens and cost of captioning the shards; sends nothing.

    Images already in the cache are not counted as requests. Image sizes are read from the PNG
    headers of up to ``sample`` images still to caption (None = all).
    """
    index = index_images(shard_paths)
    ids = list(index["image_id"])
    cached = _cached(_journal(cache_dir), settings, ids) if cache_dir is not None else {}
    todo = {i for i in ids if i not in cached}
    sizes = sample_image_sizes(shard_paths, todo, sample) if todo else []
    if not sizes:
        sizes = sample_image_sizes(shard_paths, None, 1)
    return estimate_cost(sizes, settings, n_requests=len(todo), n_cached=len(cached))
