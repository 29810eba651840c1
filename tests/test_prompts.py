"""Prompt tables: templates, seeds, caption selection, CPC variants and shard slicing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from synth2real.prompts.tables import (
    PROMPT_COLUMNS,
    PromptError,
    caption_prompts,
    class_name_prompts,
    cpc_variants,
    read_prompt_table,
    shard_rows,
    write_prompt_table,
)
from synth2real.seeding import derive_seed

CLASSES = [
    {"class_id": "n01443537", "class_name": "goldfish"},
    {"class_id": "n01629819", "class_name": "European fire salamander"},
    {"class_id": "n02085620", "class_name": "Chihuahua"},
]


@pytest.fixture(scope="module")
def captions():
    """Stand-in for the captioner's output: 4 captions per class, stored out of order."""
    rows = []
    for c in CLASSES:
        for k in (3, 1, 0, 2):
            rows.append(
                {
                    "image_id": f"{c['class_id']}_{k}",
                    "class_id": c["class_id"],
                    "caption": f" photo {k} of a {c['class_name']} on grass. ",
                }
            )
    return pa.Table.from_pylist(rows)


def test_class_name_prompts_use_the_bare_name_by_default():
    table = class_name_prompts(CLASSES, "sd15-classname", "train", 4, base_seed=7)
    assert table.column_names == list(PROMPT_COLUMNS)
    assert table.num_rows == 12
    d = table.to_pydict()
    assert d["prompt"][:4] == ["goldfish"] * 4 and d["prompt"][4] == "European fire salamander"
    assert d["label"] == [0] * 4 + [1] * 4 + [2] * 4
    assert d["row"] == list(range(12))
    assert d["source_id"][:2] == ["n01443537/0", "n01443537/1"]
    assert d["seed"][5] == derive_seed(7, "sd15-classname", "train", 5)
    assert len(set(d["seed"])) == 12


def test_class_name_template_is_configurable():
    table = class_name_prompts(
        CLASSES[:1], "d", "train", 1, 0, template="a photo of a {class_name}"
    )
    assert table.column("prompt").to_pylist() == ["a photo of a goldfish"]


def test_seeds_differ_across_splits_and_datasets_but_not_reruns():
    a = class_name_prompts(CLASSES, "sd15-classname", "train", 2, 0).column("seed").to_pylist()
    b = class_name_prompts(CLASSES, "sd15-classname", "val", 2, 0).column("seed").to_pylist()
    c = class_name_prompts(CLASSES, "flux-dev-classname", "train", 2, 0).column("seed").to_pylist()
    assert (
        a == class_name_prompts(CLASSES, "sd15-classname", "train", 2, 0).column("seed").to_pylist()
    )
    assert not set(a) & set(b) and not set(a) & set(c)


def test_caption_prompts_follow_the_class_name_caption_template(captions):
    table = caption_prompts(CLASSES, captions, "qwen-caption", "train", base_seed=1)
    d = table.to_pydict()
    assert table.num_rows == 12
    # Sorted by image_id within a class, stripped, prefixed with the class name.
    assert d["prompt"][:2] == [
        "goldfish, photo 0 of a goldfish on grass.",
        "goldfish, photo 1 of a goldfish on grass.",
    ]
    assert d["source_id"][:2] == ["n01443537_0/0", "n01443537_1/0"]
    assert set(d["prompt_type"]) == {"caption"}


def test_captions_per_class_variant_repeats_each_caption_with_new_seeds(captions):
    table = caption_prompts(
        CLASSES,
        captions,
        "qwen-cpc2x3",
        "train",
        1,
        images_per_class=6,
        captions_per_class=2,
        images_per_caption=3,
    )
    d = table.to_pydict()
    assert table.num_rows == 18
    first = d["prompt"][:6]
    assert first[:3] == [first[0]] * 3 and first[3:] == [first[3]] * 3 and first[0] != first[3]
    assert d["source_id"][:4] == [
        "n01443537_0/0",
        "n01443537_0/1",
        "n01443537_0/2",
        "n01443537_1/0",
    ]
    assert len(set(d["seed"])) == 18
    assert cpc_variants([{"captions_per_class": 100, "images_per_caption": 5}]) == ["cpc100x5"]


def test_caption_shortfalls_are_errors_not_short_splits(captions):
    with pytest.raises(PromptError, match="4 captions, 5 requested"):
        caption_prompts(CLASSES, captions, "d", "train", 0, captions_per_class=5)
    with pytest.raises(PromptError, match="images_per_class is 500"):
        caption_prompts(CLASSES, captions, "d", "train", 0, images_per_class=500)
    with pytest.raises(PromptError, match="no captions"):
        caption_prompts(
            CLASSES + [{"class_id": "n9", "class_name": "x"}], captions, "d", "train", 0
        )


@pytest.mark.parametrize("n_shards", [1, 3, 5, 12])
def test_shards_partition_the_table(n_shards):
    table = class_name_prompts(CLASSES, "d", "train", 4, 0)
    parts = [shard_rows(table, n_shards, i) for i in range(n_shards)]
    assert pa.concat_tables(parts).equals(table)
    assert max(p.num_rows for p in parts) - min(p.num_rows for p in parts) <= 1
    with pytest.raises(PromptError):
        shard_rows(table, n_shards, n_shards)


def test_prompt_table_round_trip(tmp_path):
    table = class_name_prompts(CLASSES, "d", "test", 2, 3)
    write_prompt_table(table, tmp_path / "p.parquet")
    assert read_prompt_table(tmp_path / "p.parquet").equals(table)
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def test_bad_class_lists_are_rejected():
    with pytest.raises(PromptError, match="unique"):
        class_name_prompts(CLASSES + CLASSES[:1], "d", "train", 1, 0)
    with pytest.raises(PromptError, match="class_name"):
        class_name_prompts([{"class_id": "x"}], "d", "train", 1, 0)
