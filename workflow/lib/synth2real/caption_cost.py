"""Dry run: how many requests, tokens and dollars a captioning run will take.

Recaptioning 100k images is the one step of the workflow that costs money per image, so the
estimate is computed from the images really sent (their size after the short-side resize) and
from the same request recipe as the run itself.

Image tokens follow OpenAI's published rules for the model family:

* patch models (gpt-4.1-mini, gpt-4.1-nano, o4-mini): the image is covered by 32x32 px patches,
  ``patches = ceil(w/32) * ceil(h/32)``. Above 1536 patches the image is first scaled down
  (by ``s = sqrt(32*32*1536 / (w*h))``, then shrunk further so that whole patches fit:
  ``s *= min(floor(w*s/32) / (w*s/32), floor(h*s/32) / (h*s/32))``) and the patches are
  counted again, capped at 1536. Tokens = ``ceil(patches * multiplier)`` with multiplier 1.62
  (gpt-4.1-mini), 2.46 (gpt-4.1-nano), 1.72 (o4-mini). ``detail`` has no effect on them.
* tile models (gpt-4o, gpt-4.1, o1, o3, ...): ``detail=low`` costs the base tokens; otherwise the
  image is fitted into 2048x2048, its short side scaled down to 768, and each 512 px tile costs
  ``tile`` tokens on top of ``base`` (85 + 170/tile; gpt-4o-mini 2833 + 5667/tile).

Text tokens are estimated at 4 characters per token (no offline o200k tokenizer is available)
plus 7 tokens of chat framing per request. Retries are not included: the estimate is the cost of
one successful request per image.

Pure arithmetic on settings and image sizes (standard library only), outside ``captions/`` so
that the workflow's dry run can print the estimate when it parses the Snakefile;
:mod:`synth2real.captions.cost` adds the image sizes read from real shards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from synth2real.caption_settings import CaptionSettings, resized_size

PATCH_MODELS: dict[str, float] = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72}
TILE_MODELS: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (2833, 5667),
    "gpt-4o": (85, 170),
    "gpt-4.1": (85, 170),
    "gpt-4.5-preview": (85, 170),
    "o1": (75, 150),
    "o3": (75, 150),
}
MAX_PATCHES = 1536
CHARS_PER_TOKEN = 4.0
REQUEST_OVERHEAD_TOKENS = 7


def _family(model: str) -> tuple[str, Any]:
    """Rule for a model name; dated snapshots (``gpt-4.1-nano-2025-04-14``) match their base."""
    for table, kind in ((PATCH_MODELS, "patch"), (TILE_MODELS, "tile")):
        for name in sorted(table, key=len, reverse=True):
            if model == name or model.startswith(name + "-"):
                return kind, table[name]
    known = ", ".join(sorted([*PATCH_MODELS, *TILE_MODELS]))
    raise ValueError(f"no image token rule for model {model!r} (known: {known})")


def patch_count(width: int, height: int) -> int:
    """32 px patches billed for an image, after the 1536-patch downscale."""
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(32 * 32 * MAX_PATCHES / (width * height))
    w_patches, h_patches = width * shrink / 32, height * shrink / 32
    shrink *= min(math.floor(w_patches) / w_patches, math.floor(h_patches) / h_patches)
    w, h = width * shrink, height * shrink
    return min(math.ceil(w / 32) * math.ceil(h / 32), MAX_PATCHES)


def image_tokens(width: int, height: int, model: str, detail: str | None = None) -> int:
    """Input tokens billed for one image of this size (as sent, i.e. after our resize)."""
    kind, rule = _family(model)
    if kind == "patch":
        return math.ceil(patch_count(width, height) * rule)
    base, tile = rule
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def text_tokens(text: str) -> int:
    """Rough token count of English text (4 characters per token)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class CostEstimate:
    """A dry-run estimate; ``*_usd`` are totals for ``n_requests`` requests."""

    model: str
    n_images: int
    n_cached: int
    n_requests: int
    image_tokens_per_request: float
    text_tokens_per_request: int
    output_tokens_per_request: float
    input_tokens: int
    output_tokens: int
    online_usd: float
    batch_usd: float
    prices_as_of: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON output of the CLI)."""
        return asdict(self)


def estimate_cost(
    image_sizes: Sequence[tuple[int, int]],
    settings: CaptionSettings,
    n_requests: int | None = None,
    n_cached: int = 0,
) -> CostEstimate:
    """Estimate tokens and cost from the *original* sizes of the images (a sample is enough).

    The mean image tokens over ``image_sizes`` (after the ``image_size`` short-side resize) is
    applied to ``n_requests`` requests (default: one per size given).
    """
    if not image_sizes:
        raise ValueError("need at least one image size")
    per_image = [
        image_tokens(*resized_size(w, h, settings.image_size), settings.model, settings.detail)
        for w, h in image_sizes
    ]
    n = len(image_sizes) if n_requests is None else n_requests
    mean_image = sum(per_image) / len(per_image)
    text = text_tokens(settings.instruction_text) + REQUEST_OVERHEAD_TOKENS
    out_mean = settings.expected_output_tokens
    input_total = round(n * (mean_image + text))
    output_total = round(n * out_mean)
    prices = settings.prices
    online = (
        input_total * prices.online_input_per_1m + output_total * prices.online_output_per_1m
    ) / 1e6
    batch = (
        input_total * prices.batch_input_per_1m + output_total * prices.batch_output_per_1m
    ) / 1e6
    return CostEstimate(
        model=settings.model,
        n_images=n + n_cached,
        n_cached=n_cached,
        n_requests=n,
        image_tokens_per_request=mean_image,
        text_tokens_per_request=text,
        output_tokens_per_request=out_mean,
        input_tokens=input_total,
        output_tokens=output_total,
        online_usd=online,
        batch_usd=batch,
        prices_as_of=prices.as_of,
    )


def estimate_summary(estimate: CostEstimate, settings: CaptionSettings) -> str:
    """The estimate in one line (requests, tokens, dollars and the instruction preset): what the
    captions job logs before it sends anything and what the workflow's dry run prints."""
    return (
        f"estimate ({settings.preset} instruction): {estimate.n_requests} request(s), "
        f"{estimate.input_tokens} input + {estimate.output_tokens} output tokens: "
        f"${estimate.online_usd:.2f} online, ${estimate.batch_usd:.2f} batch"
    )


def dry_run_note(captions: Mapping[str, Any], images: Mapping[str, int], image_px: int) -> str:
    """The estimate the workflow's dry run prints, from the config alone: ``images`` maps each
    real split the captions job will caption to its image count, all stored ``image_px``
    square (the real shards are), asked with the config's ``captions`` section.

    Every image counts: captions already in the job's cache are not sent again, but reading the
    cache is no parse-time work, so this is the bill of a first run (the job logs the exact one).
    """
    settings = CaptionSettings.from_config(captions)
    n = sum(images.values())
    estimate = estimate_cost([(image_px, image_px)], settings, n_requests=n)
    splits = ", ".join(f"{split} {count}" for split, count in images.items())
    return (
        f"captions: {n} real image(s) to caption ({splits}; {image_px}x{image_px} px) with "
        f"{settings.model}, {settings.mode} mode, prices as of {estimate.prices_as_of} "
        f"(captions.prices):\n  {estimate_summary(estimate, settings)}"
    )
