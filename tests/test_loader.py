"""Streaming loader pieces: the decoded cache and the epoch/rank batch sampler."""

import os

import numpy as np
import pytest
import torch

from synth2real.shards import load_split
from synth2real.train.loader import (
    DecodedCacheDataset,
    EpochBatchSampler,
    ShardImageDataset,
    build_decoded_cache,
)


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
