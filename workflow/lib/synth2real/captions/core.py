"""Settings, request building and answer checking shared by the online and batch captioners.

Both modes must send byte-identical requests and judge answers by the same rules, otherwise the
two would not produce the same caption table for the same images. Everything here is pure (no
network, no files), which is what lets the cache key, the request body and the refusal detector be
tested on their own.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from PIL import Image

#: Instruction presets. ``paper`` follows the paper's text (Sec. 3: "a two to three-sentence
#: description ... that captures the background, foreground, and describes all visible objects").
#: ``official`` is the prompt of the authors' released captioning script, which asks for 5-6
#: sentences and also the camera angle; it is what the released code really ran. Neither gives
#: what the paper printed: all ten sample captions of its Table 3 are three sentences and all
#: describe the camera angle. ``table3`` is the official prompt with the text's sentence count,
#: two to three, so it asks for exactly what Table 3 shows (background, foreground, objects and
#: camera angle) and changes nothing else in the official wording.
INSTRUCTION_PRESETS: dict[str, str] = {
    "paper": (
        "You are an expert image captioning model. Write a detailed caption of two to three "
        "sentences for this image. Describe the background and the foreground, and describe "
        "all visible objects."
    ),
    "official": (
        "You are an expert image captioning model. You will write a detailed 5-6 sentence "
        "caption that describes background, foreground, objects and camera angle of the image."
    ),
    "table3": (
        "You are an expert image captioning model. You will write a detailed two to three "
        "sentence caption that describes background, foreground, objects and camera angle of "
        "the image."
    ),
}

#: Mean answer length (output tokens) assumed by the dry run when none is configured. Two to
#: three English sentences are about 50-80 tokens, five to six about 120-160. ``table3``: the
#: ten captions of the paper's Table 3 average 387 characters, 97 tokens at the dry run's four
#: characters per token.
DEFAULT_OUTPUT_TOKENS_MEAN: dict[str, float] = {"paper": 80.0, "official": 150.0, "table3": 97.0}
CUSTOM_OUTPUT_TOKENS_MEAN = 120.0

MODES = ("online", "batch")
IMAGE_FORMATS = ("jpeg", "png")
DETAILS = (None, "auto", "low", "high")

#: Failure reasons that mean "the model answered, but not with a usable caption"; they spend
#: the ``refusal_retries`` budget. Every other reason is a transport problem and spends
#: ``max_retries``, except the permanent ones, which are not retried at all.
BAD_ANSWER_REASONS = frozenset({"refusal", "empty", "malformed"})
PERMANENT_REASONS = frozenset({"bad_request", "request_too_large"})

log = logging.getLogger("synth2real.captions.runner")


class CaptionError(RuntimeError):
    """Captioning cannot go on (bad settings, missing API key, authentication refused)."""


@dataclass(frozen=True)
class Prices:
    """USD per one million tokens, for the online and the Batch API (which is half price).

    Defaults: gpt-4.1-nano's public list prices as published on OpenAI's pricing page at the
    model's launch; ``as_of`` is that date. They could not be re-checked offline when this was
    written, so compare them with the pricing page (and override them in the config) before
    relying on an estimate.
    """

    online_input_per_1m: float = 0.10
    online_output_per_1m: float = 0.40
    batch_input_per_1m: float = 0.05
    batch_output_per_1m: float = 0.20
    as_of: str = "2025-04-14"


@dataclass(frozen=True)
class CaptionSettings:
    """Everything that decides what is sent, how it is retried and what it costs.

    ``instruction`` is a preset name (``paper``, ``official``, ``table3``; see
    :data:`INSTRUCTION_PRESETS`) or a custom instruction text. The
    image is resized so that its short side is ``image_size`` px (0 keeps it as is) and sent as
    a JPEG (quality ``jpeg_quality``) or PNG data URL, like the authors' script (256 px, JPEG 95).
    ``max_retries`` is the per-image budget for transport errors (429, 5xx, timeouts,
    disconnects); ``refusal_retries`` the budget for refused, empty or malformed answers.
    """

    model: str = "gpt-4.1-nano"
    base_url: str | None = None
    mode: str = "online"
    instruction: str = "paper"
    image_size: int = 256
    image_format: str = "jpeg"
    jpeg_quality: int = 95
    detail: str | None = None
    max_output_tokens: int | None = 300
    concurrency: int = 16
    timeout_s: float = 90.0
    max_retries: int = 6
    refusal_retries: int = 2
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 190_000_000
    batch_max_open: int = 0
    batch_poll_s: float = 60.0
    batch_max_wait_s: float = 100_000.0
    max_failure_fraction: float = 0.01
    output_tokens_mean: float | None = None
    prices: Prices = field(default_factory=Prices)

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"image_format must be one of {IMAGE_FORMATS}")
        if self.detail not in DETAILS:
            problems.append(f"detail must be one of {DETAILS}")
        if not self.instruction.strip():
            problems.append("instruction must not be empty")
        for name in ("concurrency", "batch_max_requests", "batch_max_bytes"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1")
        for name in ("max_retries", "refusal_retries", "image_size", "batch_max_open"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        for name in ("timeout_s", "batch_poll_s", "batch_max_wait_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if not 0.0 <= self.max_failure_fraction <= 1.0:
            problems.append("max_failure_fraction must be in [0, 1]")
        if problems:
            raise CaptionError("invalid caption settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> CaptionSettings:
        """Build settings from a config section (e.g. ``config["captions"]``), rejecting typos.

        Unknown keys are an error rather than ignored, because a misspelt ``max_retries`` would
        otherwise silently run with the default budget.
        """
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise CaptionError(f"unknown caption setting(s): {', '.join(unknown)}")
        prices = config.pop("prices", None)
        if prices is not None and not isinstance(prices, Prices):
            price_fields = {f.name for f in dataclasses.fields(Prices)}
            bad = sorted(set(prices) - price_fields)
            if bad:
                raise CaptionError(f"unknown price key(s): {', '.join(bad)}")
            prices = Prices(**prices)
        if prices is not None:
            config["prices"] = prices
        return cls(**config)

    def replace(self, **changes: Any) -> CaptionSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def instruction_text(self) -> str:
        """The instruction actually sent: the preset's text, or the custom text itself."""
        return INSTRUCTION_PRESETS.get(self.instruction, self.instruction)

    @property
    def instruction_hash(self) -> str:
        """Key of the request recipe: instruction text and how the image is encoded.

        The image size and encoding are part of the key because they change what the model
        sees, so a caption made from a 256 px JPEG must not be reused for a 512 px PNG run.
        Concurrency, retries and the API endpoint are not: they do not change the question.
        """
        recipe = {
            "instruction": self.instruction_text,
            "image_size": self.image_size,
            "image_format": self.image_format,
            "jpeg_quality": self.jpeg_quality if self.image_format == "jpeg" else None,
            "detail": self.detail,
            "max_output_tokens": self.max_output_tokens,
        }
        blob = json.dumps(recipe, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def expected_output_tokens(self) -> float:
        """Mean answer length for the dry run: configured, else a per-preset guess."""
        if self.output_tokens_mean is not None:
            return float(self.output_tokens_mean)
        return DEFAULT_OUTPUT_TOKENS_MEAN.get(self.instruction, CUSTOM_OUTPUT_TOKENS_MEAN)

    def to_public_dict(self) -> dict[str, Any]:
        """Settings as plain data, for table metadata and logs (holds no secret by design)."""
        return dataclasses.asdict(self)


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


def resized_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size after scaling the short side to ``short_side`` (0 = unchanged), as the authors did.

    The long side is truncated with ``int()``, exactly like the released script, so that the
    image token count of the dry run matches the images really sent.
    """
    if short_side <= 0 or min(width, height) == short_side:
        return width, height
    if width < height:
        return short_side, int(height * (short_side / width))
    return int(width * (short_side / height)), short_side


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
