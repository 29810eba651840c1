"""Batch API captioning: JSONL request files, upload, submit, poll, collect, retry.

The Batch API is half price but asynchronous (up to 24 h), so a captioning job must survive its
own restart. Every batch is recorded in a state file (atomic JSON) *before* it is created and
again once it has an id; a restarted run first resumes polling the batches it knows, adopts a
batch created just before a kill by its ``metadata`` tag, and only then submits what is left.
Requests are split so that no batch exceeds the per-batch request count or file size limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import openai

from synth2real.captions.core import (
    PERMANENT_REASONS,
    Answer,
    AttemptLog,
    CaptionError,
    CaptionItem,
    CaptionSettings,
    Failure,
    backoff_delay,
    caption_record,
    chat_request_body,
    image_data_url,
    parse_answer,
    redact,
)
from synth2real.captions.online import classify_exception
from synth2real.captions.store import CaptionJournal, read_json
from synth2real.io import atomic_write_json

log = logging.getLogger("synth2real.captions.runner")

ENDPOINT = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
STATE_VERSION = 1
T = TypeVar("T")


@dataclass
class BatchState:
    """What a restarted run must know: the batches in flight and the attempts spent so far."""

    path: Path
    model: str
    instruction_hash: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, settings: CaptionSettings) -> BatchState:
        """Load the state file for this (model, instruction) or start an empty one."""
        data = read_json(path)
        state = cls(path, settings.model, settings.instruction_hash)
        if data is None:
            return state
        if data.get("version") != STATE_VERSION:
            raise CaptionError(f"batch state {path} has an unknown version")
        if (data.get("model"), data.get("instruction_hash")) != (
            settings.model,
            settings.instruction_hash,
        ):
            raise CaptionError(f"batch state {path} belongs to another model or instruction")
        state.batches = list(data.get("batches", []))
        state.attempts = dict(data.get("attempts", {}))
        return state

    def save(self) -> None:
        """Atomically persist the state (whole or not at all)."""
        atomic_write_json(
            self.path,
            {
                "version": STATE_VERSION,
                "model": self.model,
                "instruction_hash": self.instruction_hash,
                "batches": self.batches,
                "attempts": self.attempts,
            },
        )

    def open_batches(self) -> list[dict[str, Any]]:
        """Batches submitted (or being submitted) whose results are not collected yet."""
        return [b for b in self.batches if not b.get("collected")]

    def attempt_log(self, image_id: str) -> AttemptLog:
        """The attempts spent on one image so far (empty if none failed yet)."""
        return AttemptLog(**self.attempts.get(image_id, {}))


def batch_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One JSONL request line of a Batch API input file."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return (json.dumps(line, separators=(",", ":")) + "\n").encode()


def split_requests(
    lines: Iterable[tuple[str, bytes]], max_requests: int, max_bytes: int
) -> Iterator[list[tuple[str, bytes]]]:
    """Group request lines into chunks within both per-batch limits, keeping their order.

    A single line larger than ``max_bytes`` can never be sent; it is yielded alone so the
    caller can report it as ``request_too_large`` instead of failing a whole batch.
    """
    chunk: list[tuple[str, bytes]] = []
    size = 0
    for custom_id, line in lines:
        if chunk and (len(chunk) >= max_requests or size + len(line) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append((custom_id, line))
        size += len(line)
    if chunk:
        yield chunk


class BatchCaptioner:
    """Runs the Batch API rounds for one (model, instruction) and journals the results."""

    def __init__(
        self,
        settings: CaptionSettings,
        journal: CaptionJournal,
        client: openai.AsyncOpenAI,
        work_dir: Path,
        *,
        on_finished: Callable[[bool], None] | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.client = client
        self.work_dir = Path(work_dir)
        self.on_finished = on_finished
        name = f"batch_state-{_safe(settings.model)}-{settings.instruction_hash}.json"
        self.state = BatchState.load(self.work_dir / name, settings)
        self.failures: dict[str, Failure] = {}
        self.new_captions = 0

    async def run(
        self,
        pending: dict[str, str],
        load_items: Callable[[set[str]], Iterable[CaptionItem]],
        done: set[str],
    ) -> tuple[int, list[Failure]]:
        """Caption every id of ``pending`` (id -> class id) not in ``done``.

        ``load_items(ids)`` streams the images of the given ids (used for every round, since
        only images that still need an answer are re-read). Returns the number of new captions
        and the images whose budgets ran out.
        """
        self.pending = dict(pending)
        self.done = set(done)
        deadline = time.monotonic() + self.settings.batch_max_wait_s
        self._remove_stray_inputs()
        await self._resume_open_batches()
        while True:
            in_flight = {i for b in self.state.open_batches() for i in b["ids"]}
            todo = {
                i
                for i in self.pending
                if i not in self.done and i not in self.failures and i not in in_flight
            }
            room = self._room()
            if todo and (room is None or room > 0):
                await self._submit(load_items(todo), room)
            if not self.state.open_batches():
                break  # nothing in flight after submitting: every image is answered or failed
            # Collect whatever finishes first, so retries and waiting chunks go out early.
            await self._collect_next(deadline)
        # Every batch is collected: the journal holds the answers, so the state (and the retry
        # budgets it kept across restarts) is spent. A later rerun starts with fresh budgets.
        self.state.path.unlink(missing_ok=True)
        return self.new_captions, sorted(self.failures.values(), key=lambda f: f.image_id)

    def _remove_stray_inputs(self) -> None:
        """Delete input files a killed run wrote but never recorded (they were never sent)."""
        known = {b["input_path"] for b in self.state.open_batches()}
        folder = self.work_dir / "batch_inputs"
        for path in folder.glob(f"{self.state.instruction_hash}-*.jsonl"):
            if str(path) not in known:
                path.unlink(missing_ok=True)

    def _room(self) -> int | None:
        """How many more batches may be opened now (None = no limit)."""
        limit = self.settings.batch_max_open
        if not limit:
            return None
        return max(0, limit - len(self.state.open_batches()))

    async def _call(self, what: str, factory: Callable[[], Awaitable[T]]) -> T:
        """One Files/Batches API call with the transport retry budget (uploads, polls...)."""
        failures = 0
        while True:
            try:
                return await factory()
            except CaptionError:
                raise
            except Exception as exc:
                reason, detail, retry_after = classify_exception(exc)
                failures += 1
                if reason in PERMANENT_REASONS or failures > self.settings.max_retries:
                    raise CaptionError(f"{what} failed: {detail}") from None
                log.warning("%s failed (%s), retrying", what, reason)
                await asyncio.sleep(
                    backoff_delay(
                        failures,
                        self.settings.backoff_base_s,
                        self.settings.backoff_max_s,
                        retry_after,
                    )
                )

    # -- submission -----------------------------------------------------------------------

    async def _submit(self, items: Iterable[CaptionItem], room: int | None) -> None:
        """Submit chunks of ``items`` (at most ``room`` batches; None = all of them)."""
        settings = self.settings

        def lines() -> Iterator[tuple[str, bytes]]:
            for item in items:
                body = chat_request_body(image_data_url(item.png, settings), settings)
                yield item.image_id, batch_line(item.image_id, body)

        submitted = 0
        for chunk in split_requests(lines(), settings.batch_max_requests, settings.batch_max_bytes):
            if len(chunk) == 1 and len(chunk[0][1]) > settings.batch_max_bytes:
                image_id = chunk[0][0]
                attempts = self.state.attempt_log(image_id)
                attempts.record_failure(
                    "request_too_large",
                    f"request is {len(chunk[0][1])} bytes > batch_max_bytes",
                    settings,
                )
                self._fail(image_id, attempts)
                continue
            await self._submit_chunk(chunk)
            submitted += 1
            if room is not None and submitted >= room:
                return

    async def _submit_chunk(self, chunk: list[tuple[str, bytes]]) -> None:
        chunk_key = uuid.uuid4().hex
        input_dir = self.work_dir / "batch_inputs"
        input_dir.mkdir(parents=True, exist_ok=True)
        input_path = input_dir / f"{self.state.instruction_hash}-{chunk_key}.jsonl"
        with open(input_path, "wb") as fh:
            for _, line in chunk:
                fh.write(line)

        async def upload() -> Any:
            with open(input_path, "rb") as fh:
                return await self.client.files.create(
                    file=(input_path.name, fh, "application/jsonl"), purpose="batch"
                )

        uploaded = await self._call("uploading a batch input file", upload)
        record = {
            "chunk": chunk_key,
            "input_path": str(input_path),
            "input_file_id": uploaded.id,
            "batch_id": None,
            "ids": [custom_id for custom_id, _ in chunk],
            "collected": False,
            "submitted_at": time.time(),
        }
        self.state.batches.append(record)
        self.state.save()  # before create: a kill now is recovered by the metadata tag
        await self._create(record)
        log.info(
            "submitted batch %s (%d requests, %d bytes)",
            record["batch_id"],
            len(chunk),
            sum(len(line) for _, line in chunk),
        )

    async def _create(self, record: dict[str, Any]) -> None:
        batch = await self._call(
            "creating a batch",
            lambda: self.client.batches.create(
                input_file_id=record["input_file_id"],
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={
                    "synth2real_chunk": record["chunk"],
                    "instruction_hash": self.state.instruction_hash,
                },
            ),
        )
        record["batch_id"] = batch.id
        self.state.save()

    async def _resume_open_batches(self) -> None:
        """Give every recorded batch an id: adopt one created just before a kill, else create."""
        orphans = [b for b in self.state.open_batches() if not b.get("batch_id")]
        if not orphans:
            if self.state.open_batches():
                log.info("resuming %d batch(es) in flight", len(self.state.open_batches()))
            return
        by_chunk: dict[str, str] = {}

        async def scan() -> None:
            async for batch in self.client.batches.list(limit=100):
                tag = (batch.metadata or {}).get("synth2real_chunk")
                if tag:
                    by_chunk.setdefault(tag, batch.id)
                if all(o["chunk"] in by_chunk for o in orphans):
                    break

        await self._call("listing batches", scan)
        for record in orphans:
            if record["chunk"] in by_chunk:
                record["batch_id"] = by_chunk[record["chunk"]]
                self.state.save()
                log.info("adopted batch %s created before a restart", record["batch_id"])
            else:
                await self._create(record)

    # -- polling and collection ------------------------------------------------------------

    async def _collect_next(self, deadline: float) -> None:
        """Poll the open batches until at least one is terminal; collect every terminal one."""
        while True:
            collected = 0
            for record in self.state.open_batches():
                try:
                    batch = await self.client.batches.retrieve(record["batch_id"])
                except Exception as exc:  # a failed poll is simply repeated next interval
                    classify_exception(exc)  # raises for fatal errors (bad key, ...)
                    log.warning("polling %s failed: %s", record["batch_id"], redact(str(exc)))
                    continue
                if batch.status in TERMINAL:
                    await self._collect(record, batch)
                    collected += 1
            if collected:
                return
            if time.monotonic() > deadline:
                raise CaptionError(
                    "batches still running after batch_max_wait_s; rerun to resume polling"
                )
            await asyncio.sleep(self.settings.batch_poll_s)

    async def _collect(self, record: dict[str, Any], batch: Any) -> None:
        outcomes: dict[str, Answer] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                content = await self._call(
                    f"downloading {file_id}",
                    lambda file_id=file_id: self.client.files.content(file_id),
                )
                outcomes.update(parse_output_lines(content.content))
        if batch.status != "completed":
            log.warning("batch %s ended as %s", batch.id, batch.status)
            errors = getattr(batch, "errors", None)
            if errors is not None and getattr(errors, "data", None):
                log.warning("batch %s errors: %s", batch.id, redact(str(errors.data)[:500]))
        fresh = []
        for image_id in record["ids"]:
            if image_id in self.done:
                continue
            answer = outcomes.get(image_id) or Answer(
                None, "missing_from_batch", detail=f"no result line (batch {batch.status})"
            )
            attempts = self.state.attempt_log(image_id)
            if answer.reason is None:
                class_id = self.pending.get(image_id, "")
                fresh.append(
                    caption_record(image_id, class_id, answer, self.settings, attempts.attempts + 1)
                )
                self.done.add(image_id)
                self.state.attempts.pop(image_id, None)
                continue
            if attempts.record_failure(answer.reason, answer.detail, self.settings):
                self.state.attempts[image_id] = attempts.to_dict()
            else:
                self._fail(image_id, attempts)
        self.new_captions += self.journal.append_many(fresh)
        if self.on_finished:
            for _ in fresh:
                self.on_finished(True)
        record["collected"] = True
        record["status"] = batch.status
        self.state.save()
        Path(record["input_path"]).unlink(missing_ok=True)
        log.info("collected batch %s: %d caption(s)", batch.id, len(fresh))

    def _fail(self, image_id: str, attempts: AttemptLog) -> None:
        self.state.attempts[image_id] = attempts.to_dict()
        self.failures[image_id] = attempts.failure(image_id, self.pending.get(image_id, ""))
        log.warning(
            "image %s failed after %d attempt(s): %s",
            image_id,
            attempts.attempts,
            attempts.last_reason,
        )
        if self.on_finished:
            self.on_finished(False)


def parse_output_lines(data: bytes) -> dict[str, Answer]:
    """Judge every line of a batch output or error file, keyed by ``custom_id``.

    A line that cannot be read at all has no usable id and is skipped; its image then shows
    up as ``missing_from_batch`` and is retried, rather than silently lost.
    """
    outcomes: dict[str, Answer] = {}
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            custom_id = str(line["custom_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable line in batch output skipped")
            continue
        outcomes[custom_id] = judge_line(line)
    return outcomes


def judge_line(line: dict[str, Any]) -> Answer:
    """The outcome of one request of a batch (same rules as an online answer)."""
    error = line.get("error")
    response = line.get("response") if isinstance(line.get("response"), dict) else None
    if error:
        message = error.get("message", "") if isinstance(error, dict) else str(error)
        return Answer(None, "batch_error", detail=redact(f"{message}")[:300])
    if response is None:
        return Answer(None, "malformed", detail="line has neither response nor error")
    status = int(response.get("status_code") or 0)
    body = response.get("body")
    if status == 200:
        return parse_answer(body)
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message", ""))
    detail = redact(f"HTTP {status}: {message}")[:300]
    if status == 429:
        return Answer(None, "rate_limited", detail=detail)
    if status >= 500 or status in (408, 409):
        return Answer(None, "server_error", detail=detail)
    return Answer(None, "bad_request", detail=detail)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
