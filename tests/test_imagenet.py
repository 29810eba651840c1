"""The ImageNet-subset reader on a tiny ILSVRC-style tree of generated JPEGs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synth2real.data import imagenet
from synth2real.data.real import write_real_shard
from synth2real.shards import decode_images, read_shard

REPO = Path(__file__).resolve().parent.parent
# Real wnids of config/classes.tsv, listed in a *different* order here to check labels follow
# the TSV's row order, not sorted wnids.
CLASSES = [("n01641577", "bullfrog"), ("n01443537", "goldfish"), ("n01629819", "salamander")]
WNIDS = [w for w, _ in CLASSES]
N_TRAIN_FILES, N_VAL_FILES = 9, 4
SPLITS = {"train": 4, "val": 2, "test": 3}
SIZES = [(40, 30), (30, 50), (33, 33)]  # landscape, portrait, square


def _jpeg(path, size, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def make_tree(root, layout):
    """train/<wnid>/*.JPEG plus val/ in class folders ("folders") or flat + a ground truth."""
    for c, wnid in enumerate(WNIDS):
        for i in range(N_TRAIN_FILES):
            _jpeg(root / "train" / wnid / f"{wnid}_{i}.JPEG", SIZES[i % 3], 100 * c + i)
    gt = []
    k = 0
    for wnid in WNIDS:
        for i in range(N_VAL_FILES):
            k += 1
            name = f"ILSVRC2012_val_{k:08d}.JPEG"
            if layout == "folders":
                _jpeg(root / "val" / wnid / name, SIZES[i % 3], 1000 + k)
            else:
                _jpeg(root / "val" / name, SIZES[i % 3], 1000 + k)
                gt.append((name, wnid))
    # an image of a class outside the subset must be ignored
    if layout == "folders":
        _jpeg(root / "val" / "n09999999" / "ILSVRC2012_val_00000999.JPEG", (30, 30), 7)
    else:
        _jpeg(root / "val" / "ILSVRC2012_val_00000999.JPEG", (30, 30), 7)
        gt.append(("ILSVRC2012_val_00000999.JPEG", "n09999999"))
    if layout == "csv":
        lines = ["ImageId,PredictionString"]
        lines += [f"{Path(n).stem},{w} 1 2 3 4 {w} 5 6 7 8" for n, w in gt]
        (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    elif layout == "txt":
        (root / "val" / "val_labels.txt").write_text("".join(f"{n}\t{w}\n" for n, w in gt))
    return root


def data_cfg(root, tmp_path, image_size=24):
    tsv = tmp_path / "classes.tsv"
    tsv.write_text("wnid\tname\n" + "".join(f"{w}\t{n}\n" for w, n in CLASSES))
    return {
        "source": "imagenet",
        "imagenet_root": str(root),
        "classes": str(tsv),
        "image_size": image_size,
        "splits": dict(SPLITS),
    }


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("ilsvrc")
    return {lay: make_tree(base / lay, lay) for lay in ("folders", "csv", "txt")}


def test_wnids_are_real():
    tsv = (REPO / "config" / "classes.tsv").read_text().split()
    assert all(w in tsv for w in WNIDS)


@pytest.mark.parametrize("layout", ["folders", "csv", "txt"])
def test_selection_sizes_disjoint_and_sources(trees, layout):
    rows = imagenet.select_rows(trees[layout], WNIDS, SPLITS, seed=0)
    for split, n in SPLITS.items():
        assert len(rows[split]) == n * len(WNIDS)
        # class-major, labels in TSV order
        assert [r.label for r in rows[split]] == [c for c in range(3) for _ in range(n)]
        assert [r.wnid for r in rows[split]] == [w for w in WNIDS for _ in range(n)]
    train = {r.source_id for r in rows["train"]}
    val = {r.source_id for r in rows["val"]}
    assert not train & val
    assert all(s.startswith(f"train/{r.wnid}/") for r in rows["train"] for s in [r.source_id])
    assert all(s.startswith(f"train/{r.wnid}/") for r in rows["val"] for s in [r.source_id])
    assert all(r.source_id.startswith("val/") for r in rows["test"])
    assert not any("00000999" in r.source_id for r in rows["test"])


def test_val_layouts_agree(trees):
    """Same images, same labels: folder and flat layouts give the same test classes."""
    by_layout = {
        lay: imagenet.select_rows(trees[lay], WNIDS, SPLITS, seed=0)["test"] for lay in trees
    }
    names = {lay: [(Path(r.source_id).name, r.wnid) for r in rs] for lay, rs in by_layout.items()}
    assert names["folders"] == names["csv"] == names["txt"]


def test_seed_changes_selection(trees):
    a = imagenet.select_rows(trees["folders"], WNIDS, SPLITS, seed=0)
    b = imagenet.select_rows(trees["folders"], WNIDS, SPLITS, seed=1)
    assert a == imagenet.select_rows(trees["folders"], WNIDS, SPLITS, seed=0)
    assert [r.source_id for r in a["train"]] != [r.source_id for r in b["train"]]
    assert [r.source_id for r in a["test"]] != [r.source_id for r in b["test"]]


def test_load_square_resizes_short_side_then_crops(tmp_path):
    path = tmp_path / "x.JPEG"
    # left third red, middle green, right third blue: the centre crop keeps mostly green
    arr = np.zeros((30, 90, 3), dtype=np.uint8)
    arr[:, :30, 0] = arr[:, 30:60, 1] = arr[:, 60:, 2] = 255
    Image.fromarray(arr).save(path, quality=95)
    out = imagenet.load_square(path, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    assert out[:, 5:15, 1].mean() > 200 and out[:, 5:15, 0].mean() < 60


def test_shards_determinism_and_contents(trees, tmp_path):
    data = data_cfg(trees["csv"], tmp_path)
    paths = []
    for shard in range(2):
        p = tmp_path / f"a-{shard}.parquet"
        write_real_shard(data, "train", shard, 2, 0, p)
        paths.append(p)
    again = tmp_path / "again.parquet"
    write_real_shard(data, "train", 0, 2, 0, again)
    assert again.read_bytes() == paths[0].read_bytes()
    other = tmp_path / "other.parquet"
    write_real_shard(data, "train", 0, 2, 5, other)
    t0, t1, to = (read_shard(p) for p in (paths[0], paths[1], other))
    assert t0.num_rows == 6 and t1.num_rows == 6
    assert t0.column("source_id").to_pylist() != to.column("source_id").to_pylist()
    labels = t0.column("label").to_pylist() + t1.column("label").to_pylist()
    assert labels == [0] * 4 + [1] * 4 + [2] * 4
    assert set(t0.column("class_id").to_pylist()) == {WNIDS[0], WNIDS[1]}
    assert t0.column("prompt").to_pylist() == [""] * 6
    assert t0.column("seed").to_pylist() == [0] * 6
    assert decode_images(t0).shape == (6, 24, 24, 3)
    rows = imagenet.select_rows(trees["csv"], WNIDS, SPLITS, seed=0)["train"]
    got = t0.column("source_id").to_pylist() + t1.column("source_id").to_pylist()
    assert got == [r.source_id for r in rows]
    # pixels are exactly the resized/cropped source image (PNG is lossless)
    first = imagenet.load_square(trees["csv"] / got[0], 24)
    np.testing.assert_array_equal(decode_images(t0)[0], first)


def test_test_split_shard_comes_from_val(trees, tmp_path):
    data = data_cfg(trees["folders"], tmp_path, image_size=16)
    out = tmp_path / "test.parquet"
    write_real_shard(data, "test", 0, 1, 0, out)
    t = read_shard(out)
    assert t.num_rows == 9
    assert all(s.startswith("val/") for s in t.column("source_id").to_pylist())
    assert decode_images(t).shape == (9, 16, 16, 3)


def _expect(match, root, wnids=WNIDS, splits=SPLITS):
    with pytest.raises(ValueError, match=match):
        imagenet.select_rows(root, wnids, splits, seed=0)


def test_errors(trees, tmp_path):
    _expect(r"does not exist", tmp_path / "nope")
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    _expect(r"only_train/val is missing", tmp_path / "only_train")
    _expect(r"n01530575 is missing.*no train folder", trees["folders"], wnids=[*WNIDS, "n01530575"])
    _expect(
        r"n01641577 has 9 images but train\+val need 10",
        trees["folders"],
        splits={"train": 8, "val": 2, "test": 1},
    )
    _expect(
        r"val set has 4 images of class n01641577 .* needs 5",
        trees["csv"],
        splits={"train": 1, "val": 1, "test": 5},
    )


def test_errors_val(tmp_path):
    root = make_tree(tmp_path / "folders", "folders")
    (root / "train" / "n01530575").mkdir()
    for i in range(6):
        _jpeg(root / "train" / "n01530575" / f"{i}.JPEG", (30, 30), i)
    _expect(
        r"val/n01530575 is missing",
        root,
        wnids=[*WNIDS, "n01530575"],
        splits={"train": 1, "val": 1, "test": 1},
    )
    flat = make_tree(tmp_path / "flat", "none")
    _expect(r"flat but no ground-truth file", flat)
    (flat / "val" / "val_labels.txt").write_text("ILSVRC2012_val_00000001.JPEG n01641577\n")
    _expect(r"ILSVRC2012_val_00000002.JPEG has no label", flat)
    with pytest.raises(ValueError, match="imagenet_root is not set"):
        write_real_shard(
            {**data_cfg(flat, tmp_path), "imagenet_root": None},
            "train",
            0,
            1,
            0,
            tmp_path / "x.parquet",
        )


def test_bench_loader_tiny(tmp_path):
    script = REPO / "tools" / "bench_loader.py"
    res = subprocess.run(
        [sys.executable, str(script), "--n", "32", "--workers", "0", "--tmp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("loader=")]
    assert [ln.split()[0] for ln in lines] == [
        "loader=shards",
        "loader=shards-cache",
        "loader=imagefolder",
    ]
    for ln in lines:
        fields = dict(kv.split("=") for kv in ln.split())
        assert fields["workers"] == "0" and fields["images"] == "32"
        assert float(fields["images_per_s"]) > 0
        assert float(fields["per_worker"]) == pytest.approx(float(fields["images_per_s"]), 0.01)
    verdicts = [ln for ln in res.stdout.splitlines() if ln.startswith("x16 ")]
    assert len(verdicts) == 3
    criteria = [ln for ln in res.stdout.splitlines() if ln.startswith("criterion ")]
    assert [ln.split()[1] for ln in criteria] == ["shards", "shards-cache"]
    assert all("resnet50@3000=" in v and "vit_tiny@4600=" in v for v in verdicts)


@pytest.mark.parametrize("preload", [True, False])
def test_shard_image_dataset(trees, tmp_path, preload):
    from synth2real.train.loader import ShardImageDataset

    data = data_cfg(trees["folders"], tmp_path, image_size=16)
    for shard in range(2):
        write_real_shard(data, "val", shard, 2, 0, tmp_path / "val" / f"shard-{shard:05d}.parquet")
    ds = ShardImageDataset([tmp_path / "val"], preload=preload)
    assert len(ds) == 6
    expected = decode_images(read_shard(tmp_path / "val" / "shard-00001.parquet"))
    image, label = ds[4]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 16, 16)
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), expected[1])
    assert [ds[i][1] for i in range(6)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(IndexError):
        ds[6]
