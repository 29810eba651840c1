"""Fig. 7's data: IPC subsets, reduced-CPC prompt tables and the scaling part of the grid."""

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import make_class_images, write_split
from test_config import ROOT, load

from synth2real.grid import ConfigError, Grid
from synth2real.scaling.subsets import (
    cpc_prompt_table,
    nested_sample,
    spread_order,
    write_ipc_subset,
)
from synth2real.shards import read_shards

CLASSES = [{"class_id": f"c{i}", "class_name": f"class {i}", "label": i} for i in range(3)]


def cpc_rows(n_classes, captions, images_per_caption, prompt=None):
    """Rows of a CPC-like split: class-major, caption-major (as cpc_prompt_table makes them)."""
    return pa.Table.from_pylist(
        [
            {
                "class_id": f"c{c}",
                "prompt": prompt if prompt is not None else f"class {c}, cap {k}",
                "source_id": f"c{c}_{k:03d}/{j}",
            }
            for c in range(n_classes)
            for k in range(captions)
            for j in range(images_per_caption)
        ]
    )


def prompts_of(table, keep, class_id):
    d = table.take(pa.array(keep)).to_pydict()
    return [p for p, c in zip(d["prompt"], d["class_id"]) if c == class_id]


def test_spread_order_gives_every_prompt_once_before_any_repeats():
    prompts = [f"cap {k}" for k in range(4) for _ in range(3)]  # caption-major, 4 x 3
    order = spread_order(prompts, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(12))
    for r in range(3):  # rounds of four: each holds every caption once
        assert sorted(prompts[i] for i in order[4 * r : 4 * r + 4]) == sorted(set(prompts))
    assert order.tolist() != list(range(12))


def test_paper_ipc_subsets_of_a_cpc_dataset_are_nested_and_hold_min_n_100_captions():
    table = cpc_rows(2, captions=100, images_per_caption=5)  # the paper's cpc100x5
    subsets = {n: nested_sample(table, n, 0, "g-cpc100x5") for n in (50, 100, 250, 500)}
    for small, large in ((50, 100), (100, 250), (250, 500)):
        assert set(subsets[small]) < set(subsets[large])
    for n, keep in subsets.items():
        labels = [c for c in table.take(pa.array(keep)).column("class_id").to_pylist()]
        assert [labels.count("c0"), labels.count("c1")] == [n, n]
        distinct = [len(set(prompts_of(table, keep, c))) for c in ("c0", "c1")]
        # the first n rows of a class would hold n / 5 captions: 10, 20, 50, 100
        assert distinct == [min(n, 100)] * 2, n
        assert keep.tolist() == sorted(keep.tolist())
    assert len(subsets[500]) == table.num_rows


def test_nested_sample_is_seeded_by_base_seed_and_dataset_only():
    table = cpc_rows(3, captions=10, images_per_caption=2)
    keep = nested_sample(table, 5, 7, "d")
    assert np.array_equal(keep, nested_sample(table, 5, 7, "d"))  # same run, same rows
    assert not np.array_equal(keep, nested_sample(table, 5, 8, "d"))  # base seed
    assert not np.array_equal(keep, nested_sample(table, 5, 7, "e"))  # dataset
    first5 = [20 * c + i for c in range(3) for i in range(5)]
    assert keep.tolist() != first5
    # keyed by source_id, not row position: reversed rows give the same rows back
    flipped = table.take(pa.array(np.arange(table.num_rows)[::-1]))
    again = flipped.take(pa.array(nested_sample(flipped, 5, 7, "d")))
    assert sorted(again.column("source_id").to_pylist()) == sorted(
        table.take(pa.array(keep)).column("source_id").to_pylist()
    )
    with pytest.raises(ValueError, match="fewer than 21"):
        nested_sample(table, 21, 7, "d")


def test_nested_sample_draws_captions_and_images_uniformly():
    """Over 2000 seeds: at n=4 of 10 captions x 3 images each caption is in with p = 0.4; at
    n=13 every caption is in and 3 of 10 have a second image (p = 0.3); at n=10 each image
    of a caption is the drawn one with p = 1/3. Class-name rows (one prompt): p = n / N.
    Tolerance 0.05 is over 4 standard errors (at most 0.011 here)."""
    table = cpc_rows(1, captions=10, images_per_caption=3)
    one_prompt = cpc_rows(1, captions=10, images_per_caption=3, prompt="class 0")
    seeds = range(2000)
    caps = np.zeros((3, 10))
    images = np.zeros(30)
    rows = np.zeros(30)
    for s in seeds:
        for k, n in enumerate((4, 13)):
            got = prompts_of(table, nested_sample(table, n, s, "d"), "c0")
            caps[k] += [got.count(f"class 0, cap {i}") for i in range(10)]
        images[nested_sample(table, 10, s, "d")] += 1
        rows[nested_sample(one_prompt, 6, s, "d")] += 1
    assert np.allclose(caps[0] / len(seeds), 0.4, atol=0.05)
    assert np.allclose(caps[1] / len(seeds) - 1, 0.3, atol=0.05)
    assert np.allclose(images / len(seeds), 1 / 3, atol=0.05)
    assert np.allclose(rows / len(seeds), 6 / 30, atol=0.05)


def test_ipc_subset_writes_the_sample_with_every_column(tmp_path):
    images, labels = make_class_images(6, 3, 8, seed=0)
    shards = [
        write_split(tmp_path / "a.parquet", images[:9], labels[:9], "a"),
        write_split(tmp_path / "b.parquet", images[9:], labels[9:], "b"),
    ]
    outs = write_ipc_subset(shards, 4, tmp_path / "ipc4", shard_size=5, base_seed=0, dataset="r")
    assert [p.name for p in outs] == [f"shard-{i:05d}.parquet" for i in range(3)]  # 12 rows / 5
    sub = read_shards(outs)
    full = read_shards(shards)
    assert sub.column_names == full.column_names
    assert np.bincount(sub.column("label").to_numpy()).tolist() == [4, 4, 4]
    assert sub.equals(full.take(pa.array(nested_sample(full, 4, 0, "r"))))
    # real rows have no prompt: a random 4 of 6 per class, not the first 4 of each class
    first4 = ["a0", "a1", "a2", "a3", "a6", "a7", "a8", "b0", "b3", "b4", "b5", "b6"]
    assert sub.column("source_id").to_pylist() != first4
    smaller = read_shards(
        write_ipc_subset(shards, 2, tmp_path / "ipc2", shard_size=100, base_seed=0, dataset="r")
    )
    assert set(smaller.column("source_id").to_pylist()) < set(sub.column("source_id").to_pylist())


def test_cpc_prompt_table_repeats_the_first_captions(tmp_path):
    rows = [
        {"image_id": f"{c['class_id']}_{k}", "class_id": c["class_id"], "caption": f"cap {k}"}
        for c in CLASSES
        for k in (2, 0, 3, 1)
    ]
    path = tmp_path / "captions.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    table = cpc_prompt_table(
        CLASSES, path, "g-cpc2x3", 0, captions_per_class=2, images_per_caption=3
    )
    d = table.to_pydict()
    assert table.num_rows == 3 * 2 * 3
    assert d["prompt"][:6] == ["class 0, cap 0"] * 3 + ["class 0, cap 1"] * 3
    assert len(set(d["seed"])) == table.num_rows


def paper():
    return load("config.yaml")


def test_paper_scaling_grid():
    grid = Grid(paper(), root=ROOT)
    assert grid.ipc_grid() == [50, 100, 250, 500]
    assert sorted(grid.cpc_datasets()) == sorted(
        f"{g}-cpc100x5" for g in ("sd15", "flux-schnell", "sd35", "qwen")
    )
    scaling = grid.scaling_datasets()
    assert list(scaling)[0] == "real"
    assert len(scaling) == 1 + 4 * 2 + 4  # real, classname + caption, CPC


def test_demo_scaling_grid():
    grid = Grid(load("demo.yaml"), root=ROOT)
    assert grid.ipc_grid() == [10, 30, 100]
    # one generator's curves: its two prompt types and its 10 captions x 10 images variant
    assert grid.cpc_datasets() == {"ddpm-cfg2.5-cpc10x10": ("ddpm-cfg2.5", "cpc10x10", 10, 10)}
    assert list(grid.scaling_datasets()) == [
        "real", "ddpm-cfg2.5-classname", "ddpm-cfg2.5-caption", "ddpm-cfg2.5-cpc10x10"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ipc": [50, 600]}, r"scaling\.ipc.*600"),
        ({"cpc": [{"captions_per_class": 100, "images_per_caption": 4}]}, r"scaling\.cpc.*400"),
        ({"generators": ["sd15", "nope"]}, r"scaling\.generators.*nope"),
    ],
)
def test_bad_scaling_values_are_named(change, message):
    config = copy.deepcopy(paper())
    config["scaling"].update(change)
    with pytest.raises(ConfigError, match=message):
        grid = Grid(config, root=ROOT)
        grid.scaling_datasets()


def test_scaling_generators_outside_the_grid_are_skipped():
    # a copy of the paper config that narrows `generators` keeps its scaling.generators
    config = yaml.safe_load(yaml.safe_dump(paper()))
    config["generators"] = ["sd15", "sdxl"]
    assert Grid(config, root=ROOT).scaling_generators() == ["sd15"]
