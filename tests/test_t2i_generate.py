"""generate_shard mechanics with a fake pipeline: OOM back-off, skip-if-done, resizing.

Downloads are tested against the local hub in tests/test_hub.py.

The fake pipeline draws each image from the generator it is handed, so these tests check the
plumbing (per-row generators, halving, metadata) without a diffusion model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth2real.generate import pipelines as t2i
from synth2real.generate.pipelines import (
    generate_shard,
    oom_backoff,
    to_uint8,
)
from synth2real.preprocess import stored_pixels
from synth2real.shards import decode_images, read_shard

SPEC = {
    "id": "fake",
    "pipeline": "FakePipeline",
    "steps": 3,
    "guidance_scale": 2.0,
    "guidance_arg": "guidance_scale",
    "resolution": 16,
    "output_size": 8,
    "pipeline_kwargs": {"extra": 1},
}


class Out:
    def __init__(self, images):
        self.images = images


class FakePipe:
    """Images drawn from each row's generator; raises a CUDA OOM above ``max_batch`` prompts."""

    def __init__(self, max_batch: int | None = None):
        self.max_batch = max_batch
        self.batches: list[int] = []
        self.kwargs: list[dict] = []

    def __call__(self, prompt, generator, height, width, output_type, **kwargs):
        self.batches.append(len(prompt))
        self.kwargs.append(kwargs)
        assert isinstance(generator, list) and len(generator) == len(prompt)
        if self.max_batch is not None and len(prompt) > self.max_batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        assert output_type == "np"
        images = np.stack([torch.rand(height, width, 3, generator=g).numpy() for g in generator])
        return Out(images)


def rows(n):
    return [
        {"class_id": f"c{i}", "label": i, "prompt": f"p{i}", "seed": 50 + i, "source_id": f"s{i}"}
        for i in range(n)
    ]


def test_oom_backoff_halves_until_it_fits_and_keeps_order():
    attempts = []

    def run(chunk):
        attempts.append(len(chunk))
        if len(chunk) > 3:
            raise torch.cuda.OutOfMemoryError("injected")
        return [x * 10 for x in chunk]

    halvings = []
    out = list(
        oom_backoff(list(range(10)), 16, run, on_oom=lambda old, new: halvings.append((old, new)))
    )
    assert halvings == [(16, 8), (8, 4), (4, 2)]
    assert attempts == [10, 8, 4, 2, 2, 2, 2, 2]
    assert [start for start, _, _ in out] == [0, 2, 4, 6, 8]
    assert [y for _, _, res in out for y in res] == [x * 10 for x in range(10)]


def test_oom_at_batch_size_one_is_raised():
    def run(chunk):
        raise torch.cuda.OutOfMemoryError("injected")

    with pytest.raises(torch.cuda.OutOfMemoryError):
        list(oom_backoff([1, 2, 3], 4, run))


def test_other_errors_are_not_mistaken_for_oom():
    def run(chunk):
        raise ValueError("a real bug")

    with pytest.raises(ValueError, match="real bug"):
        list(oom_backoff([1, 2, 3], 4, run))


def test_generate_shard_survives_injected_oom_with_identical_images(tmp_path):
    ok = generate_shard(
        FakePipe(), SPEC, rows(7), tmp_path / "ok.parquet", batch_size=8, progress=False
    )
    pipe = FakePipe(max_batch=2)
    stats = generate_shard(
        pipe, SPEC, rows(7), tmp_path / "oom.parquet", batch_size=8, progress=False
    )
    assert ok["oom_retries"] == 0 and ok["batch_size"] == 8
    assert stats["oom_retries"] == 2 and stats["batch_size"] == 2
    assert pipe.batches == [7, 4, 2, 2, 2, 1]
    np.testing.assert_array_equal(
        decode_images(read_shard(tmp_path / "ok.parquet")),
        decode_images(read_shard(tmp_path / "oom.parquet")),
    )


def test_generate_shard_passes_settings_and_stores_them(tmp_path):
    pipe = FakePipe()
    generate_shard(
        pipe,
        SPEC,
        rows(3),
        tmp_path / "s.parquet",
        batch_size=2,
        dataset="fake-caption",
        split="val",
        shard=5,
        progress=False,
    )
    assert pipe.kwargs[0] == {"extra": 1, "num_inference_steps": 3, "guidance_scale": 2.0}
    table = read_shard(tmp_path / "s.parquet").to_pydict()
    assert table["dataset"] == ["fake-caption"] * 3 and table["split"] == ["val"] * 3
    assert table["shard"] == [5] * 3 and table["row"] == [0, 1, 2]
    assert table["output_size"] == [8] * 3 and table["resolution"] == [16] * 3
    expected = stored_pixels(
        to_uint8(torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(51)).numpy()), 8
    )
    np.testing.assert_array_equal(decode_images(read_shard(tmp_path / "s.parquet"))[1], expected)


def test_guidance_goes_to_the_keyword_the_spec_names(tmp_path):
    pipe = FakePipe()
    spec = dict(SPEC, guidance_arg="true_cfg_scale", pipeline_kwargs={})
    generate_shard(pipe, spec, rows(1), tmp_path / "s.parquet", batch_size=1, progress=False)
    assert pipe.kwargs[0] == {"num_inference_steps": 3, "true_cfg_scale": 2.0}


def test_existing_shard_is_skipped_untouched(tmp_path):
    out = tmp_path / "s.parquet"
    out.write_bytes(b"complete shard")
    pipe = FakePipe()
    stats = generate_shard(pipe, SPEC, rows(3), out, batch_size=2, progress=False)
    assert stats["skipped"] and pipe.batches == []
    assert out.read_bytes() == b"complete shard"


def test_rows_without_required_columns_are_rejected(tmp_path):
    bad = [{"class_id": "c", "label": 0, "prompt": "p", "source_id": "s"}]
    with pytest.raises(ValueError, match="seed"):
        generate_shard(FakePipe(), SPEC, bad, tmp_path / "s.parquet", batch_size=1, progress=False)


def test_jpeg_quality_comes_from_the_spec(tmp_path):
    """The official code's JPEG q95 at the generation resolution, before the shared resize."""
    generate_shard(FakePipe(), SPEC, rows(2), tmp_path / "p.parquet", batch_size=2, progress=False)
    spec = dict(SPEC, jpeg_quality=95)
    generate_shard(FakePipe(), spec, rows(2), tmp_path / "j.parquet", batch_size=2, progress=False)
    lossless = decode_images(read_shard(tmp_path / "p.parquet"))
    jpeg = decode_images(read_shard(tmp_path / "j.parquet"))
    full = to_uint8(torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(50)).numpy())
    np.testing.assert_array_equal(lossless[0], stored_pixels(full, 8))
    np.testing.assert_array_equal(jpeg[0], stored_pixels(full, 8, jpeg_quality=95))
    assert not np.array_equal(lossless, jpeg)
    assert 0 < np.abs(lossless.astype(int) - jpeg.astype(int)).mean() < 20


def test_to_uint8_matches_diffusers_rounding():
    x = np.array([[[[0.0, 0.5, 1.0]]]], dtype=np.float32)
    np.testing.assert_array_equal(to_uint8(x), [[[[0, 128, 255]]]])
    np.testing.assert_array_equal(to_uint8(np.array([[[[np.nan, -1.0, 2.0]]]])), [[[[0, 0, 255]]]])


# ---------------------------------------------------------------------------------- load
def test_load_pipeline_rejects_unknown_classes():
    with pytest.raises(t2i.RegistryError, match="NoSuchPipeline"):
        t2i.load_pipeline({"pipeline": "NoSuchPipeline"}, "/nonexistent")
