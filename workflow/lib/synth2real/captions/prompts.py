"""Caption prompts for the generators, and how many of them CLIP's text encoder would cut.

Prompts follow the paper's template ``"[class name], [caption]"`` (Singh et al.), so the label is
in the prompt even when the caption never names it. CLIP-based text encoders (SD 1.x/2.x, SDXL)
read at most 77 tokens including the start and end tokens; the rest is silently dropped, so the
fraction of prompts over that limit says how much of each caption such generators never see.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

CLIP_MAX_TOKENS = 77
ALL_CLASSES = "__all__"


def caption_prompt(class_name: str, caption: str) -> str:
    """The paper's prompt template: ``"[class name], [caption]"``."""
    return f"{class_name.strip()}, {' '.join(caption.split())}"


def caption_prompts(captions: pd.DataFrame, class_names: Mapping[str, str]) -> pd.DataFrame:
    """One prompt per captioned image: columns ``image_id``, ``class_id``, ``prompt``.

    Raises if a caption's class has no name, since a prompt without its class name would
    silently lose the label alignment the template exists for.
    """
    missing = sorted(set(captions["class_id"]) - set(class_names))
    if missing:
        raise KeyError(f"no class name for class id(s): {', '.join(missing[:10])}")
    prompts = [
        caption_prompt(class_names[c], text)
        for c, text in zip(captions["class_id"], captions["caption"])
    ]
    return pd.DataFrame(
        {
            "image_id": captions["image_id"].astype(str).to_numpy(),
            "class_id": captions["class_id"].astype(str).to_numpy(),
            "prompt": prompts,
        }
    )


def load_class_names(
    path: str | os.PathLike[str], id_column: str = "wnid", name_column: str = "name"
) -> dict[str, str]:
    """Class id -> name from a TSV/CSV class table (separator chosen by the file suffix).

    Defaults match ``config/classes.tsv`` (columns ``wnid``, ``name``).
    """
    sep = "," if str(path).endswith(".csv") else "\t"
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    for column in (id_column, name_column):
        if column not in table.columns:
            raise KeyError(f"class table {path} has no column {column!r}")
    return dict(zip(table[id_column], table[name_column]))


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
    prompts: pd.DataFrame,
    tokenizer: Any,
    max_tokens: int = CLIP_MAX_TOKENS,
    class_names: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Per class (and overall, ``class_id == "__all__"``): prompts over the CLIP limit.

    Columns: ``class_id``, ``class_name``, ``n_prompts``, ``n_over``, ``frac_over``,
    ``mean_tokens``, ``max_tokens``. A prompt is over the limit when its token count, start
    and end tokens included, exceeds ``max_tokens``.
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
    names = dict(class_names or {})
    stats["class_name"] = [names.get(c, "") for c in stats["class_id"]]
    columns = ["class_id", "class_name", "n_prompts", "n_over", "frac_over"]
    return stats[[*columns, "mean_tokens", "max_tokens"]]
