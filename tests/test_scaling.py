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
from synth2real.scaling.subsets import cpc_prompt_table, first_per_class, write_ipc_subset
from synth2real.shards import read_shards

CLASSES = [{"class_id": f"c{i}", "class_name": f"class {i}", "label": i} for i in range(3)]


def test_first_per_class_keeps_row_order_and_refuses_short_classes():
    labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1])
    assert first_per_class(labels, 2).tolist() == [0, 1, 2, 3, 4, 6]
    with pytest.raises(ValueError, match="fewer than 4"):
        first_per_class(labels, 4)


def test_ipc_subset_is_a_prefix_per_class_with_every_column(tmp_path):
    images, labels = make_class_images(6, 3, 8, seed=0)
    shards = [
        write_split(tmp_path / "a.parquet", images[:9], labels[:9], "a"),
        write_split(tmp_path / "b.parquet", images[9:], labels[9:], "b"),
    ]
    outs = write_ipc_subset(shards, 4, tmp_path / "ipc4", shard_size=5)
    assert [p.name for p in outs] == [f"shard-{i:05d}.parquet" for i in range(3)]  # 12 rows / 5
    sub = read_shards(outs)
    full = read_shards(shards)
    assert sub.column_names == full.column_names
    assert np.bincount(sub.column("label").to_numpy()).tolist() == [4, 4, 4]
    # class 0 sits in rows 0-5 of shard a: its first four are a0..a3
    assert sub.column("source_id").to_pylist()[:4] == ["a0", "a1", "a2", "a3"]
    smaller = read_shards(write_ipc_subset(shards, 2, tmp_path / "ipc2", shard_size=100))
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
    assert grid.cpc_datasets() == {}  # class-name prompts only
    assert list(grid.scaling_datasets()) == ["real", *grid.synthetic]


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
