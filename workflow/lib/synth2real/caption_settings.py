"""What a caption request asks and how the image is sent: the captioner's settings.

They live outside ``captions/`` (the jobs' code, which imports openai, PIL and pyarrow) because
the workflow reads them when it parses the Snakefile: its dry run prints what captioning the
run's real images will cost (:mod:`synth2real.caption_cost`), and parsing must stay cheap
(tests/test_parse_cost.py). Standard library only. :mod:`synth2real.captions.core` re-exports
the names the captioner's modules import from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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

#: Keys of the config's captions section that pick which images are captioned (the job's
#: inputs), not what a request asks: they never reach :class:`CaptionSettings`.
WORKFLOW_KEYS = ("held_out",)

MODES = ("online", "batch")
IMAGE_FORMATS = ("jpeg", "png")
DETAILS = (None, "auto", "low", "high")


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

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> CaptionSettings:
        """Settings from the workflow config's ``captions`` section, without its
        :data:`WORKFLOW_KEYS` (which images, not what is asked)."""
        section = dict(section or {})
        return cls.from_mapping({k: v for k, v in section.items() if k not in WORKFLOW_KEYS})

    def replace(self, **changes: Any) -> CaptionSettings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def instruction_text(self) -> str:
        """The instruction actually sent: the preset's text, or the custom text itself."""
        return INSTRUCTION_PRESETS.get(self.instruction, self.instruction)

    @property
    def preset(self) -> str:
        """The instruction's preset name, or ``custom`` for a custom text (logs, estimates)."""
        return self.instruction if self.instruction in INSTRUCTION_PRESETS else "custom"

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
