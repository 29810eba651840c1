"""Request building and answer checking shared by the online and batch captioners.

Both modes must send byte-identical requests and judge answers by the same rules, otherwise the
two would not produce the same caption table for the same images. Everything here is pure (no
network, no files), which is what lets the cache key, the request body and the refusal detector be
tested on their own. The settings themselves (:class:`CaptionSettings`, the presets, the
prices) live in :mod:`synth2real.caption_settings`, which the workflow reads at parse time; they
are re-exported here.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import logging
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image

# CaptionError, INSTRUCTION_PRESETS and Prices are re-exported: the captioner's modules and
# tests import them from here.
from synth2real.caption_settings import (  # noqa: F401
    INSTRUCTION_PRESETS,
    CaptionError,
    CaptionSettings,
    Prices,
    resized_size,
)

#: Failure reasons that mean "the model answered, but not with a usable caption"; they spend
#: the ``refusal_retries`` budget. Every other reason is a transport problem and spends
#: ``max_retries``, except the permanent ones, which are not retried at all.
BAD_ANSWER_REASONS = frozenset({"refusal", "empty", "malformed"})
PERMANENT_REASONS = frozenset({"bad_request", "request_too_large"})

log = logging.getLogger("synth2real.captions.runner")


@dataclass(frozen=True)
class CaptionItem:
    """One image to caption: its id (the shard's ``source_id``), class and PNG bytes."""

    image_id: str
    class_id: str
    png: bytes


@dataclass(frozen=True)
class Answer:
    """A judged answer: ``reason`` is None for a usable caption, else why it is not usable."""

    caption: str | None
    reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    detail: str = ""


@dataclass
class Failure:
    """An image that ran out of retries; it goes to the failures report, never dropped."""

    image_id: str
    class_id: str
    reason: str
    attempts: int
    detail: str = ""


def encode_image(png: bytes, settings: CaptionSettings) -> tuple[bytes, str]:
    """Resize (Lanczos) and re-encode one image; return ``(bytes, mime type)``.

    Encoding settings are fixed, so the same input gives the same bytes, which keeps batch
    and online requests identical and makes the fake server's answers reproducible.
    """
    with Image.open(io.BytesIO(png)) as im:
        rgb = im.convert("RGB")
    size = resized_size(rgb.width, rgb.height, settings.image_size)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if settings.image_format == "jpeg":
        rgb.save(buf, format="JPEG", quality=settings.jpeg_quality)
        return buf.getvalue(), "image/jpeg"
    rgb.save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue(), "image/png"


def image_data_url(png: bytes, settings: CaptionSettings) -> str:
    """The ``data:`` URL the model receives for one image."""
    data, mime = encode_image(png, settings)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_request_body(data_url: str, settings: CaptionSettings) -> dict[str, Any]:
    """The Chat Completions request body, shared by online calls and Batch API lines.

    Instruction text first, then the image, in one user message: the layout of the authors'
    script (which used the Responses API with the same two parts).
    """
    image: dict[str, Any] = {"url": data_url}
    if settings.detail is not None:
        image["detail"] = settings.detail
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": settings.instruction_text},
                    {"type": "image_url", "image_url": image},
                ],
            }
        ],
    }
    if settings.max_output_tokens is not None:
        body["max_completion_tokens"] = settings.max_output_tokens
    return body


_REFUSAL_RE = re.compile(
    r"^\s*(?:"
    r"(?:i'?m|i\s+am)\s+sorry|sorry,?\s+(?:but\s+)?i\b|i\s+apologi[sz]e"
    r"|(?:i\s+(?:can'?t|cannot|can\s+not|won'?t|will\s+not)|(?:i'm|i\s+am)\s+(?:unable|not\s+able))"
    r"\s+(?:to\s+)?(?:help|assist|provide|describe|comply|caption|process|identify|do|view"
    r"|analy[sz]e|see)"
    r"|unfortunately,?\s+i\b"
    r"|as\s+an\s+ai\b"
    r")",
    re.IGNORECASE,
)


def looks_like_refusal(text: str) -> bool:
    """True for typical refusal phrasings ("I'm sorry, I can't help with that.")."""
    return bool(_REFUSAL_RE.match(text.replace("\u2019", "'")))


def clean_caption(text: str) -> str:
    """Collapse all whitespace (prompts are one line), strip surrounding quotes."""
    text = " ".join(text.split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def parse_answer(body: Any) -> Answer:
    """Judge a Chat Completions response body (a decoded JSON object).

    Anything short of one non-empty, non-refusing text answer is a bad answer with a reason, so
    the caller can retry it and, at the end, report it instead of dropping it.
    """
    if not isinstance(body, Mapping):
        return Answer(None, "malformed", detail="response body is not a JSON object")
    usage = body.get("usage") if isinstance(body.get("usage"), Mapping) else {}
    tokens_in = _as_int(usage.get("prompt_tokens"))
    tokens_out = _as_int(usage.get("completion_tokens"))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return Answer(None, "malformed", tokens_in, tokens_out, "no choices in response")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, Mapping):
        return Answer(None, "malformed", tokens_in, tokens_out, "choice has no message")
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal.strip():
        return Answer(None, "refusal", tokens_in, tokens_out, refusal.strip()[:200])
    if choice.get("finish_reason") == "content_filter":
        return Answer(None, "refusal", tokens_in, tokens_out, "finish_reason=content_filter")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        return Answer(None, "malformed", tokens_in, tokens_out, "message content is not text")
    caption = clean_caption(content or "")
    if not caption:
        return Answer(None, "empty", tokens_in, tokens_out, "empty answer")
    if looks_like_refusal(caption):
        return Answer(None, "refusal", tokens_in, tokens_out, caption[:200])
    return Answer(caption, None, tokens_in, tokens_out)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def backoff_delay(
    failures: int,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before the next try: exponential with jitter, never below Retry-After.

    Equal jitter (half fixed, half random) keeps retries of many concurrent requests from
    arriving in lock step; a server's ``retry-after`` is a floor, because retrying earlier
    only earns another 429.
    """
    rng = rng or random.Random()
    ceiling = min(max_s, base_s * (2.0 ** max(failures - 1, 0)))
    delay = ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)
    if retry_after_s is not None and retry_after_s > 0:
        delay = max(delay, retry_after_s * (1.0 + rng.uniform(0.0, 0.1)))
    return delay


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (float seconds); None if absent."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / scale, 0.0)
        except ValueError:
            continue
    return None


_KEY_PATTERN = re.compile(r"sk-[A-Za-z0-9_\-*]{6,}")


def redact(text: str) -> str:
    """Remove the API key (and anything shaped like an OpenAI key) from a message.

    Server error messages can echo the key ("Incorrect API key provided: sk-..."), and they
    end up in logs and the failures report, which are kept and shared.
    """
    key = os.environ.get("OPENAI_API_KEY", "")
    if len(key) >= 4:
        text = text.replace(key, "[REDACTED]")
    return _KEY_PATTERN.sub("sk-[REDACTED]", text)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


@dataclass
class AttemptLog:
    """Attempts made for one image, split by budget, and the last thing that went wrong."""

    transient: int = 0
    bad: int = 0
    attempts: int = 0
    last_reason: str = ""
    last_detail: str = ""

    def record_failure(self, reason: str, detail: str, settings: CaptionSettings) -> bool:
        """Count one failed attempt; return True while the image may be tried again."""
        self.attempts += 1
        self.last_reason = reason
        self.last_detail = redact(detail)[:300]
        if reason in PERMANENT_REASONS:
            return False
        if reason in BAD_ANSWER_REASONS:
            self.bad += 1
            return self.bad <= settings.refusal_retries
        self.transient += 1
        return self.transient <= settings.max_retries

    def failure(self, image_id: str, class_id: str) -> Failure:
        """The failures-report row for an image whose budget ran out."""
        return Failure(image_id, class_id, self.last_reason, self.attempts, self.last_detail)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the batch state file."""
        return dataclasses.asdict(self)


def caption_record(
    item_id: str, class_id: str, answer: Answer, settings: CaptionSettings, attempts: int
) -> dict[str, Any]:
    """The journal record of one finished caption."""
    return {
        "image_id": item_id,
        "class_id": class_id,
        "model": settings.model,
        "instruction_hash": settings.instruction_hash,
        "caption": answer.caption,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "mode": settings.mode,
        "attempts": attempts,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
