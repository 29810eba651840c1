"""Online captioning: concurrent Chat Completions calls with our own retry budget.

The openai client is built with ``max_retries=0``: its built-in retries would spend an unknown
part of the budget invisibly and could not tell a refusal from a success. Here every attempt is
counted per image, transport errors back off exponentially with jitter (never sooner than the
server's ``retry-after``), and each caption is journaled (fsync'ed) the moment it arrives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import openai

from synth2real.captions.core import (
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
    parse_retry_after,
    redact,
)
from synth2real.captions.store import CaptionJournal

log = logging.getLogger("synth2real.captions.runner")


def classify_exception(exc: BaseException) -> tuple[str, str, float | None]:
    """Map an exception from one API call to ``(reason, detail, retry_after_s)``.

    Errors that no retry can fix for any image (bad key, no quota, unknown model or endpoint)
    raise :class:`CaptionError` so the run stops at once instead of burning every budget.
    """
    detail = redact(f"{type(exc).__name__}: {exc}")[:300]
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        raise CaptionError(f"the API refused the credentials: {detail}") from None
    if isinstance(exc, openai.NotFoundError):
        raise CaptionError(f"model or endpoint not found: {detail}") from None
    if isinstance(exc, openai.RateLimitError):
        if getattr(exc, "code", None) == "insufficient_quota":
            raise CaptionError(f"the account has no quota left: {detail}") from None
        return "rate_limited", detail, parse_retry_after(exc.response.headers)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return "timeout", detail, None
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", detail, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500 or status in (408, 409):
            return "server_error", detail, parse_retry_after(exc.response.headers)
        return "bad_request", detail, None
    if isinstance(exc, ValueError | openai.APIResponseValidationError):
        return "malformed", detail, None
    raise exc


async def request_caption(
    client: openai.AsyncOpenAI, body: dict[str, Any], timeout_s: float
) -> Answer:
    """One Chat Completions call, judged; the raw body is parsed here so that a malformed or
    partial JSON answer is a bad answer, not a crash inside the client's model classes."""
    raw = await asyncio.wait_for(
        client.chat.completions.with_raw_response.create(**body), timeout=timeout_s + 5.0
    )
    return parse_answer(json.loads(raw.text))


async def _attempt(
    client: openai.AsyncOpenAI, body: dict[str, Any], timeout_s: float, in_flight: asyncio.Semaphore
) -> tuple[Answer, float | None]:
    """One request, holding an in-flight slot: (judged answer, the server's retry-after)."""
    async with in_flight:
        try:
            return await request_caption(client, body, timeout_s), None
        except Exception as exc:  # classified: transport error or bad answer
            reason, detail, retry_after = classify_exception(exc)
            return Answer(None, reason, detail=detail), retry_after


async def caption_online(
    items: Iterable[CaptionItem],
    settings: CaptionSettings,
    journal: CaptionJournal,
    client: openai.AsyncOpenAI,
    *,
    on_finished: Callable[[bool], None] | None = None,
    seed: int | None = None,
) -> tuple[int, list[Failure]]:
    """Caption ``items`` with at most ``settings.concurrency`` requests in flight.

    ``items`` is consumed lazily, with a bounded number of images held in memory, so that a
    100k-image split never sits decoded in RAM. Returns the number of new captions journaled
    and the failures whose retry budgets ran out. ``on_finished(ok)`` is called per image
    (progress bars).
    """
    in_flight = asyncio.Semaphore(settings.concurrency)
    held = asyncio.Semaphore(settings.concurrency * 4)
    rng = random.Random(seed)
    failures: list[Failure] = []
    done = 0

    async def one(item: CaptionItem) -> None:
        nonlocal done
        try:
            data_url = await asyncio.to_thread(image_data_url, item.png, settings)
            body = chat_request_body(data_url, settings)
            attempts = AttemptLog()
            while True:
                answer, retry_after = await _attempt(client, body, settings.timeout_s, in_flight)
                if answer.reason is None:
                    journal.append(
                        caption_record(
                            item.image_id, item.class_id, answer, settings, attempts.attempts + 1
                        )
                    )
                    done += 1
                    if on_finished:
                        on_finished(True)
                    return
                again = attempts.record_failure(answer.reason, answer.detail, settings)
                log.debug(
                    "image %s attempt %d: %s", item.image_id, attempts.attempts, answer.reason
                )
                if not again:
                    failures.append(attempts.failure(item.image_id, item.class_id))
                    log.warning(
                        "image %s failed after %d attempt(s): %s",
                        item.image_id,
                        attempts.attempts,
                        attempts.last_reason,
                    )
                    if on_finished:
                        on_finished(False)
                    return
                await asyncio.sleep(
                    backoff_delay(
                        attempts.transient + attempts.bad,
                        settings.backoff_base_s,
                        settings.backoff_max_s,
                        retry_after,
                        rng,
                    )
                )
        finally:
            held.release()

    try:
        async with asyncio.TaskGroup() as group:
            for item in items:
                await held.acquire()
                group.create_task(one(item))
    except* CaptionError as errors:
        raise errors.exceptions[0] from None
    return done, failures
