"""How many caption prompts CLIP's text encoder would cut.

CLIP-based text encoders (SD 1.x/2.x, SDXL) read at most 77 tokens including the start and end
tokens; the rest is silently dropped, so the fraction of prompts over that limit says how much
of each caption such generators never see. The prompts counted are the generators' own: they
come from :func:`synth2real.prompts.tables.caption_prompt_rows`, the function that builds the
prompt tables, never from a second rendering of the template.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

#: CLIP's text context, start and end tokens included: longer texts are truncated.
CLIP_MAX_TOKENS = 77
ALL_CLASSES = "__all__"


def load_clip_tokenizer(path: str | os.PathLike[str]) -> Any:
    """Load a CLIP tokenizer from a local directory (no hub access: offline by design)."""
    from transformers import CLIPTokenizer

    if not Path(path).is_dir():
        raise FileNotFoundError(f"CLIP tokenizer directory not found: {path}")
    return CLIPTokenizer.from_pretrained(str(path), local_files_only=True)


def prompt_token_counts(prompts: list[str], tokenizer: Any, chunk: int = 1024) -> list[int]:
    """Token counts including the start and end tokens, without truncation."""
    counts: list[int] = []
    for start in range(0, len(prompts), chunk):
        encoded = tokenizer(prompts[start : start + chunk], truncation=False)["input_ids"]
        counts.extend(len(ids) for ids in encoded)
    return counts


def prompt_token_stats(
    prompts: pd.DataFrame, tokenizer: Any, max_tokens: int = CLIP_MAX_TOKENS
) -> pd.DataFrame:
    """Per class (and overall, ``class_id == "__all__"``): prompts over the CLIP limit.

    ``prompts`` has columns ``class_id``, ``class_name`` and ``prompt`` (the rows of
    :func:`synth2real.prompts.tables.caption_prompt_rows`, or a prompt table). Columns:
    ``class_id``, ``class_name``, ``n_prompts``, ``n_over``, ``frac_over``, ``mean_tokens``,
    ``max_tokens``. A prompt is over the limit when its token count, start and end tokens
    included, exceeds ``max_tokens``.
    """
    counts = pd.Series(prompt_token_counts(list(prompts["prompt"]), tokenizer), dtype="int64")
    frame = pd.DataFrame({"class_id": prompts["class_id"].to_numpy(), "tokens": counts})
    frame["over"] = frame["tokens"] > max_tokens
    per_class = (
        frame.groupby("class_id", sort=True)
        .agg(
            n_prompts=("tokens", "size"),
            n_over=("over", "sum"),
            mean_tokens=("tokens", "mean"),
            max_tokens=("tokens", "max"),
        )
        .reset_index()
    )
    overall = pd.DataFrame(
        {
            "class_id": [ALL_CLASSES],
            "n_prompts": [len(frame)],
            "n_over": [int(frame["over"].sum())],
            "mean_tokens": [float(frame["tokens"].mean()) if len(frame) else 0.0],
            "max_tokens": [int(frame["tokens"].max()) if len(frame) else 0],
        }
    )
    stats = pd.concat([per_class, overall], ignore_index=True)
    stats["n_over"] = stats["n_over"].astype("int64")
    stats["frac_over"] = stats["n_over"] / stats["n_prompts"].where(stats["n_prompts"] > 0, 1)
    names = dict(zip(prompts["class_id"], prompts["class_name"]))
    stats["class_name"] = [names.get(c, "") for c in stats["class_id"]]
    columns = ["class_id", "class_name", "n_prompts", "n_over", "frac_over"]
    return stats[[*columns, "mean_tokens", "max_tokens"]]
