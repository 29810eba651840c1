"""Choose the class list and prompt builder for a synthetic split from the workflow config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth2real.data import digits
from synth2real.grid import read_classes
from synth2real.prompts.tables import caption_prompts, class_name_prompts


def class_table(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Classes in label order as ``class_id``/``class_name`` rows (digits or the TSV subset)."""
    data = config["data"]
    if data["source"] == "digits":
        return [
            {"class_id": name, "class_name": name, "label": i}
            for i, name in enumerate(digits.CLASS_NAMES)
        ]
    return classes_from_file(data["classes"])


def classes_from_file(
    path: str | os.PathLike[str], id_column: str = "wnid", name_column: str = "name"
) -> list[dict[str, Any]]:
    """A class table's rows as ``class_id``/``class_name``/``label`` (label = row order)."""
    return [
        {"class_id": r[id_column], "class_name": r[name_column], "label": i}
        for i, r in enumerate(read_classes(path, id_column, name_column))
    ]


def build_prompt_table(
    config: Mapping[str, Any],
    dataset: str,
    split: str,
    prompt_type: str,
    images_per_class: int,
    captions: str | os.PathLike[str] | None = None,
) -> pa.Table:
    """The prompt table of one synthetic split (class-name or caption prompts).

    Caption prompts use one caption per image of ``captions``, the first ``images_per_class``
    of each class in image-id order, each row with its own seed. Which real split's captions
    a synthetic split gets is the workflow's choice (``Grid.caption_source``): with
    ``captions.held_out`` the val and test prompts describe real val and test images, outside
    train and disjoint from each other; without it every split gets the train captions, so
    val and test reuse the same first train captions of each class, as the official code.
    """
    classes = class_table(config)
    if prompt_type == "classname":
        template = config["prompts"]["template"]
        return class_name_prompts(
            classes, dataset, split, images_per_class, config["seed"], template=template
        )
    if prompt_type == "caption":
        if captions is None:
            raise ValueError(f"{dataset}: caption prompts need the captions table as input")
        return caption_prompts(
            classes,
            pq.read_table(captions),
            dataset,
            split,
            config["seed"],
            captions_per_class=images_per_class,
            images_per_caption=1,
        )
    raise ValueError(f"unknown prompt type {prompt_type!r}")
