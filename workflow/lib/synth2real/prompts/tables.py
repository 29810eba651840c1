"""Prompt tables: one row per image to generate, fixed before any GPU job starts.

A prompt table is the whole plan of a synthetic split (which class, which prompt, which seed),
written once as Parquet. Generation jobs only read their shard's slice of it
(:func:`shard_rows`), so a shard can be regenerated alone, byte for byte, and the DAG knows
every shard up front.

Two prompt types, as in the paper (Sec. 4.1):

* ``classname``: the class name through a template (default ``"{class_name}"``, the paper's
  bare label prompt);
* ``caption``: ``"[class name], [caption]"`` (Singh et al.'s template) from a captions table of
  real images, so the label survives even when the caption misses the class. A
  captions-per-class (CPC) limit with several images per caption gives the paper's Fig. 7
  variants (e.g. 100 captions x 5 images per class).

Seeds are ``derive_seed(base_seed, dataset, split, row)``: a row's noise depends only on where
it lives, never on shard count or job order.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth2real.io import write_table_atomic
from synth2real.seeding import derive_seed
from synth2real.shards import chunk_rows

#: The paper's class-name prompt is the bare class name.
DEFAULT_CLASS_TEMPLATE = "{class_name}"
#: Singh et al.'s caption template used by the paper: "[class name], [caption]".
DEFAULT_CAPTION_TEMPLATE = "{class_name}, {caption}"

PROMPT_COLUMNS: tuple[str, ...] = (
    "dataset",
    "split",
    "row",
    "class_id",
    "label",
    "class_name",
    "prompt_type",
    "prompt",
    "seed",
    "source_id",
)

_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("row", pa.int64()),
        ("class_id", pa.string()),
        ("label", pa.int32()),
        ("class_name", pa.string()),
        ("prompt_type", pa.string()),
        ("prompt", pa.string()),
        ("seed", pa.int64()),
        ("source_id", pa.string()),
    ]
)


class PromptError(ValueError):
    """The inputs cannot produce the requested prompt table."""


def _classes(classes: pa.Table | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Normalise a class list to dicts with class_id, class_name and label (default: position)."""
    rows = classes.to_pylist() if isinstance(classes, pa.Table) else [dict(c) for c in classes]
    if not rows:
        raise PromptError("the class list is empty")
    for i, c in enumerate(rows):
        if "class_id" not in c or "class_name" not in c:
            raise PromptError(f"class row {i} needs class_id and class_name, got {sorted(c)}")
        c.setdefault("label", i)
    ids = [c["class_id"] for c in rows]
    if len(set(ids)) != len(ids):
        raise PromptError("class ids are not unique")
    return rows


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def class_name_prompts(
    classes: pa.Table | Sequence[Mapping[str, Any]],
    dataset: str,
    split: str,
    images_per_class: int,
    base_seed: int,
    template: str = DEFAULT_CLASS_TEMPLATE,
) -> pa.Table:
    """``images_per_class`` rows per class, class-major, prompt = ``template`` of the class name.

    All rows of a class share the prompt, so the images differ only through their seeds; that
    is exactly the paper's setting, whose low diversity the benchmark measures.
    """
    if images_per_class < 1:
        raise PromptError("images_per_class must be >= 1")
    out = []
    for c in _classes(classes):
        prompt = template.format(class_name=c["class_name"], class_id=c["class_id"])
        for k in range(images_per_class):
            out.append(
                {
                    "class_id": c["class_id"],
                    "label": int(c["label"]),
                    "class_name": c["class_name"],
                    "prompt_type": "classname",
                    "prompt": prompt,
                    "source_id": f"{c['class_id']}/{k}",
                }
            )
    return _finish(out, dataset, split, base_seed)


def caption_prompt_rows(
    classes: pa.Table | Sequence[Mapping[str, Any]],
    captions: pa.Table,
    captions_per_class: int | None = None,
    template: str = DEFAULT_CAPTION_TEMPLATE,
) -> list[dict[str, Any]]:
    """One row per caption kept: ``class_id, label, class_name, image_id, prompt``.

    The single place a caption becomes a prompt: :func:`caption_prompts` repeats these rows
    into a prompt table, and the CLIP 77-token statistics count these very prompts, so the
    statistics describe what the generators are given. Per class (in class order), captions
    are taken in ``image_id`` order (so the choice does not depend on how the captioner wrote
    its table) and the first ``captions_per_class`` are kept (all if None). Only the caption's
    ends are stripped: its inner text reaches the generator as the captioner wrote it.
    """
    missing = {"image_id", "class_id", "caption"} - set(captions.column_names)
    if missing:
        raise PromptError(f"captions table lacks column(s): {', '.join(sorted(missing))}")
    by_class: dict[str, list[tuple[str, str]]] = {}
    for r in captions.select(["image_id", "class_id", "caption"]).to_pylist():
        by_class.setdefault(str(r["class_id"]), []).append((str(r["image_id"]), str(r["caption"])))
    out = []
    for c in _classes(classes):
        caps = sorted(by_class.get(str(c["class_id"]), []))
        if captions_per_class is not None:
            if len(caps) < captions_per_class:
                raise PromptError(
                    f"class {c['class_id']} has {len(caps)} captions, "
                    f"{captions_per_class} requested"
                )
            caps = caps[:captions_per_class]
        if not caps:
            raise PromptError(f"class {c['class_id']} has no captions")
        for image_id, caption in caps:
            prompt = template.format(
                class_name=c["class_name"], class_id=c["class_id"], caption=caption.strip()
            )
            out.append(
                {
                    "class_id": c["class_id"],
                    "label": int(c["label"]),
                    "class_name": c["class_name"],
                    "image_id": image_id,
                    "prompt": prompt,
                }
            )
    return out


def caption_prompts(
    classes: pa.Table | Sequence[Mapping[str, Any]],
    captions: pa.Table,
    dataset: str,
    split: str,
    base_seed: int,
    images_per_class: int | None = None,
    captions_per_class: int | None = None,
    images_per_caption: int = 1,
    template: str = DEFAULT_CAPTION_TEMPLATE,
) -> pa.Table:
    """Rows from a captions table (``image_id, class_id, caption``): one per caption and repeat.

    The captions and prompts are :func:`caption_prompt_rows`'; each is used
    ``images_per_caption`` times with different seeds. ``images_per_class``, when given, must
    equal captions x repeats and guards against a silently short split. ``source_id`` is
    ``<image_id>/<repeat>``: the real image the caption describes.
    """
    if images_per_caption < 1:
        raise PromptError("images_per_caption must be >= 1")
    rows = caption_prompt_rows(classes, captions, captions_per_class, template)
    if images_per_class is not None:
        for class_id, n_caps in Counter(r["class_id"] for r in rows).items():
            n = n_caps * images_per_caption
            if n != images_per_class:
                raise PromptError(
                    f"class {class_id}: {n_caps} captions x {images_per_caption} images = {n}, "
                    f"but images_per_class is {images_per_class}"
                )
    out = []
    for r in rows:
        for j in range(images_per_caption):
            out.append(
                {
                    "class_id": r["class_id"],
                    "label": r["label"],
                    "class_name": r["class_name"],
                    "prompt_type": "caption",
                    "prompt": r["prompt"],
                    "source_id": f"{r['image_id']}/{j}",
                }
            )
    return _finish(out, dataset, split, base_seed)


def _finish(rows: list[dict[str, Any]], dataset: str, split: str, base_seed: int) -> pa.Table:
    for i, r in enumerate(rows):
        r.update(
            dataset=dataset, split=split, row=i, seed=derive_seed(base_seed, dataset, split, i)
        )
    return _table(rows)


def cpc_variants(cpc_grid: Sequence[Mapping[str, int]]) -> list[str]:
    """Names like ``cpc100x5`` for a CPC grid.

    The grid is ``[{captions_per_class: 100, images_per_caption: 5}, ...]``.

    The name goes into the prompt-type part of a dataset id (e.g. ``flux-dev-cpc100x5``).
    """
    return [f"cpc{int(g['captions_per_class'])}x{int(g['images_per_caption'])}" for g in cpc_grid]


def shard_rows(prompt_table: pa.Table, n_shards: int, shard_index: int) -> pa.Table:
    """The contiguous slice of ``prompt_table`` that shard ``shard_index`` of ``n_shards`` makes."""
    if not 0 <= shard_index < n_shards:
        raise PromptError(f"shard index {shard_index} outside 0..{n_shards - 1}")
    start, stop = list(chunk_rows(prompt_table.num_rows, n_shards))[shard_index]
    return prompt_table.slice(start, stop - start)


def write_prompt_table(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Write a prompt table atomically (a half-written plan must never be read)."""
    write_table_atomic(table, path)


def read_prompt_table(path: str | os.PathLike[str]) -> pa.Table:
    """Read a prompt table written by :func:`write_prompt_table`."""
    return pq.read_table(path)
