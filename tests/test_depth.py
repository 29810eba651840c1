"""The depth probe's real code path, on a tiny random-weight Depth Anything built locally."""

import numpy as np
import pytest

from synth2real.probes.depth import depth_maps, load_depth_model, minmax_uint8
from synth2real.probes.transform import map_shard
from synth2real.shards import load_split


@pytest.fixture(scope="module")
def tiny_depth_dir(tmp_path_factory):
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        image_size=28, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8, head_hidden_size=8, patch_size=14,
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(
        size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14,
        do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("depth")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


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
