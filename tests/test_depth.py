"""The depth probe's real code path, on a tiny random-weight Depth Anything built locally."""

import numpy as np
import pytest
from tiny_models import save_tiny_depth

from synth2real.probes.depth import depth_maps, load_depth_model, minmax_uint8
from synth2real.probes.transform import map_shard
from synth2real.shards import load_split


@pytest.fixture(scope="module")
def tiny_depth_dir(tmp_path_factory):
    return save_tiny_depth(tmp_path_factory.mktemp("depth"))


def test_depth_probe_shard_end_to_end(tiny_depth_dir, tiny_splits, tmp_path):
    model, processor = load_depth_model(tiny_depth_dir)
    assert type(model).__name__ == "DepthAnythingForDepthEstimation"
    out = tmp_path / "depth.parquet"
    map_shard(tiny_splits["test"][0], out, lambda x: depth_maps(model, processor, x, batch_size=4))
    images, labels = load_split([out])
    src, src_labels = load_split(tiny_splits["test"])
    assert images.shape == src.shape and np.array_equal(labels, src_labels)
    # min-max per image, replicated to three equal channels
    assert (images.reshape(len(images), -1).min(1) == 0).all()
    assert (images.reshape(len(images), -1).max(1) == 255).all()
    assert np.array_equal(images[..., 0], images[..., 2])
    # deterministic: the same shard twice gives the same bytes
    again = tmp_path / "again.parquet"
    map_shard(
        tiny_splits["test"][0], again, lambda x: depth_maps(model, processor, x, batch_size=3)
    )
    assert out.read_bytes() == again.read_bytes()


def test_minmax_handles_flat_maps():
    import torch

    depth = torch.stack([torch.zeros(4, 4), torch.arange(16.0).reshape(4, 4)])
    out = minmax_uint8(depth)
    assert out.shape == (2, 4, 4, 3)
    assert out[0].max() == 0 and out[1].min() == 0 and out[1].max() == 255
