"""Streaming loader pieces: the decoded cache and the epoch/rank batch sampler."""

import os

import numpy as np
import pytest
import torch

from synth2real.shards import encode_image, load_split, write_shard
from synth2real.train.augment import TransformSpec, to_unit, train_transform
from synth2real.train.loader import (
    DecodedCacheDataset,
    EpochBatchSampler,
    ShardImageDataset,
    build_decoded_cache,
)
from synth2real.train.recipe import Runtime


def test_decoded_cache_is_built_once_and_equals_the_shards(tiny_splits, tmp_path):
    root = tmp_path / "cache"
    entry = build_decoded_cache(tiny_splits["train"], root)
    stamp = os.stat(entry / "images.npy").st_mtime_ns
    assert build_decoded_cache(tiny_splits["train"], root) == entry  # reused, not rebuilt
    assert os.stat(entry / "images.npy").st_mtime_ns == stamp
    assert [p.name for p in root.iterdir()] == [entry.name]  # no temp dirs left behind
    images, labels = load_split(tiny_splits["train"])
    ds = DecodedCacheDataset(entry)
    assert len(ds) == len(labels) and np.array_equal(ds.labels(), labels)
    for i in (0, 17, len(ds) - 1):
        image, label = ds[i]
        assert torch.equal(image, torch.from_numpy(images[i]).permute(2, 0, 1))
        assert label == labels[i]
    # The shard reader gives the same tensors (what the cache replaces).
    shards = ShardImageDataset(tiny_splits["train"])
    assert torch.equal(shards[17][0], ds[17][0])
    # Another split (other bytes) gets its own entry.
    assert build_decoded_cache(tiny_splits["val"], root) != entry


def test_16_bit_views_pass_every_input_path_unchanged(tmp_path):
    """A 16-bit probe view (``.npy`` rows) reads back bit for bit in memory, from the shards
    and from the decoded cache, which keeps its dtype."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 65536, (5, 12, 12, 3), dtype=np.uint16)
    view = tmp_path / "view"
    write_shard(
        {"image": [encode_image(im) for im in images], "label": [0, 1, 2, 0, 1],
         "class_id": ["c"] * 5, "prompt": [""] * 5, "seed": [0] * 5,
         "source_id": [f"s{i}" for i in range(5)]},
        view / "shard-00000.parquet",
    )  # fmt: skip
    x, y = load_split([view])
    assert x.dtype == np.uint16 and np.array_equal(x, images) and y.tolist() == [0, 1, 2, 0, 1]
    entry = build_decoded_cache([view], tmp_path / "cache")
    assert np.load(entry / "images.npy", mmap_mode="r").dtype == np.uint16
    expected = torch.from_numpy(images[3]).permute(2, 0, 1)
    for ds in (ShardImageDataset([view]), DecodedCacheDataset(entry)):
        assert torch.equal(ds[3][0], expected) and ds[3][1] == 0
    # Memory estimate counts 2 bytes a channel: 5 * 12 * 12 * 3 * 2 = 4320 bytes.
    assert Runtime(memory_limit_mb=0.0043).mode([view]) == "stream"
    assert Runtime(memory_limit_mb=0.0044).mode([view]) == "memory"


@pytest.mark.parametrize("augment", ["paper", "official_rgb", "official_band", "official_texture"])
def test_train_transforms_resample_16_bit_images_as_floats(augment):
    """torchvision's uint16 resize wraps overshoot around (65535 + 1 -> 0); a uint16 image
    must go through the float path, exactly as its [0, 1] float copy does."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.integers(0, 65536, (3, 40, 40), dtype=np.uint16))
    x[:, :, :20] = 65535  # a hard edge: bicubic overshoots past full scale here
    size = 16 if augment != "paper" else None
    transform = train_transform(TransformSpec(augment=augment, input_size=size, crop_padding=2))
    torch.manual_seed(0)
    out = transform(x)
    torch.manual_seed(0)
    assert torch.equal(out, transform(to_unit(x)))
    assert out.abs().max() < 10  # normalised [0, 1] plus overshoot, not a wrapped 65535


def test_decoded_cache_rejects_an_unset_variable(tiny_splits):
    with pytest.raises(ValueError, match="unset environment variable"):
        build_decoded_cache(tiny_splits["train"], "$SYNTH2REAL_SURELY_UNSET/x")


def test_epoch_batch_sampler_splits_global_batches_across_ranks():
    one = EpochBatchSampler(21, 8, seed=3)
    ranks = [EpochBatchSampler(21, 8, seed=3, rank=r, world=2) for r in range(2)]
    for epoch in (0, 1):
        for s in (one, *ranks):
            s.set_epoch(epoch)
        glob = list(one)
        assert [len(b) for b in glob] == [8, 8, 5]
        assert sorted(i for b in glob for _, i in b) == list(range(21))
        assert all(e == epoch for b in glob for e, _ in b)
        parts = [list(s) for s in ranks]
        for k, batch in enumerate(glob):  # rank r holds rows r::2 of global batch k
            merged = sorted(parts[0][k] + parts[1][k])
            assert merged == sorted(batch)
    one.set_epoch(0)
    first = [i for b in one for _, i in b]
    one.set_epoch(1)
    assert first != [i for b in one for _, i in b]  # reshuffled every epoch
    assert len(EpochBatchSampler(17, 8, seed=0, world=2)) == 2  # last batch of 1 < 2 ranks
