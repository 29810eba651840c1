"""CLIP features, per-class PRDC and CLIPScore, run on a tiny random-weight CLIP.

The tiny model has the same classes as ViT-L/14 (CLIPModel, CLIPTokenizer with a hand-made
BPE vocabulary, CLIPImageProcessor), is saved to a directory and loaded back through
``load_clip``: the exact code path the workflow uses with the real weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_clip

from synth2real.metrics.clip import (
    caption_overflow_fraction,
    clip_scores,
    extract_features,
    image_features,
    load_clip,
    shard_clip_scores,
)
from synth2real.metrics.features import load_features, save_features
from synth2real.metrics.prdc import compute_prdc, per_class_prdc
from synth2real.shards import encode_png, write_shard


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def bundle(clip_dir):
    return load_clip(clip_dir, device="cpu")


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(n)]


def _write(path, images, labels, prompts=None):
    n = len(images)
    write_shard(
        {
            "image": [encode_png(im) for im in images],
            "label": list(labels),
            "class_id": [f"n{lab:08d}" for lab in labels],
            "prompt": prompts or [f"a photo of class {lab}" for lab in labels],
            "seed": list(range(n)),
            "source_id": [f"row{i}" for i in range(n)],
        },
        path,
    )
    return path


def test_load_clip_gives_the_saved_tiny_model(bundle):
    assert type(bundle.model).__name__ == "CLIPModel"
    assert bundle.model.config.projection_dim == 16
    assert bundle.max_tokens == 77
    assert not bundle.model.training


def test_extract_features_matches_a_direct_model_call(bundle, tmp_path):
    imgs = _images(7, seed=1)
    shards = [
        _write(tmp_path / "a.parquet", imgs[:4], [0, 1, 0, 2]),
        _write(tmp_path / "b.parquet", imgs[4:], [2, 1, 0]),
    ]
    feats, labels = extract_features(bundle, shards, batch_size=3, progress=False)
    assert feats.shape == (7, 16) and feats.dtype == np.float32
    assert labels.tolist() == [0, 1, 0, 2, 2, 1, 0]

    pixels = bundle.processor(images=imgs, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        direct = bundle.model.get_image_features(pixel_values=pixels).pooler_output
    np.testing.assert_allclose(feats, direct.numpy(), rtol=1e-5, atol=1e-5)
    # Deterministic, and different images really give different features.
    again, _ = extract_features(bundle, shards, batch_size=7, progress=False)
    np.testing.assert_allclose(again, feats, rtol=1e-5, atol=1e-5)
    assert np.abs(feats[0] - feats[1]).max() > 1e-3


def test_feature_file_roundtrip_is_one_npz_and_checks_lengths(tmp_path):
    feats = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float64)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.int32)
    path = tmp_path / "out" / "real.npz"
    save_features(path, feats, labels)
    got_f, got_l = load_features(path)
    np.testing.assert_array_equal(got_f, feats.astype(np.float32))
    np.testing.assert_array_equal(got_l, labels)
    assert (got_f.dtype, got_l.dtype) == (np.float32, np.int64)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["real.npz"]  # no temp left
    with pytest.raises(ValueError, match="labels"):
        save_features(tmp_path / "bad.npz", feats, labels[:3])
    assert not (tmp_path / "bad.npz").exists()


def test_per_class_prdc_flags_collapse_and_skips_tiny_classes():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((90, 8)).astype(np.float32)
    real_labels = np.repeat([0, 1, 2], 30)
    # class 0: the fake set *is* the real set; class 1: collapsed onto 3 real points (10
    # near-copies each, so every fake's k-th fake neighbour is a copy at distance 0);
    # class 2: only 4 fakes (fewer than k + 1), so it is reported but skipped.
    fake0 = real[:30].copy()
    fake1 = np.repeat(real[30:33], 10, axis=0) + 1e-3
    fake2 = rng.standard_normal((4, 8)).astype(np.float32)
    fake = np.concatenate([fake0, fake1, fake2]).astype(np.float32)
    fake_labels = np.array([0] * 30 + [1] * 30 + [2] * 4)
    rows = {r["label"]: r for r in per_class_prdc(real, real_labels, fake, fake_labels, 5)}

    assert rows[0]["precision"] == rows[0]["recall"] == rows[0]["coverage"] == 1.0
    # collapsed: every fake looks real (precision 1) but no real is recalled, and fewer
    # real neighbourhoods are covered than by the faithful class 0.
    assert rows[1]["precision"] == 1.0
    assert rows[1]["recall"] == 0.0
    assert rows[1]["coverage"] < rows[0]["coverage"]
    assert rows[2]["skipped"] == 1 and math.isnan(rows[2]["density"])
    assert (rows[2]["n_real"], rows[2]["n_fake"]) == (30, 4)
    direct = compute_prdc(real[30:60], fake1, 5)
    assert {k: rows[1][k] for k in direct} == direct


def test_clip_scores_are_clipped_cosines_times_100(bundle):
    imgs = _images(3, seed=5)
    caps = ["the cat", "the dog", "a cat and the dog"]
    scores = clip_scores(bundle, imgs, caps, batch_size=2)
    pixels = bundle.processor(images=imgs, return_tensors="pt")["pixel_values"]
    tok = bundle.tokenizer(caps, padding=True, return_tensors="pt")
    with torch.no_grad():
        img = bundle.model.get_image_features(pixel_values=pixels).pooler_output
        txt = bundle.model.get_text_features(**tok).pooler_output
    cos = torch.nn.functional.cosine_similarity(img, txt).numpy()
    np.testing.assert_allclose(scores, 100 * np.maximum(cos, 0), rtol=1e-5, atol=1e-4)
    assert ((scores >= 0) & (scores <= 100)).all()


def test_clip_score_truncates_long_captions_at_77_tokens(bundle):
    img = _images(1, seed=9)
    long = "the " * 100
    same = clip_scores(bundle, img * 2, [long, long + " dog cat dog"])
    assert same[0] == pytest.approx(same[1], abs=1e-6)  # text past token 77 is not seen
    assert caption_overflow_fraction(bundle.tokenizer, ["the cat", long]) == 0.5
    assert caption_overflow_fraction(bundle.tokenizer, ["the " * 75]) == 0.0  # 75 + 2 = 77
    assert caption_overflow_fraction(bundle.tokenizer, ["the " * 76]) == 1.0


def test_shard_clip_scores_pair_each_image_with_its_prompt(bundle, tmp_path):
    imgs = _images(4, seed=11)
    prompts = ["the cat", "the dog", "the cat", "a dog"]
    shard = _write(tmp_path / "s.parquet", imgs, [0, 1, 0, 1], prompts)
    scores, texts = shard_clip_scores(bundle, [shard], batch_size=3, progress=False)
    assert texts == prompts
    np.testing.assert_allclose(scores, clip_scores(bundle, imgs, prompts), atol=1e-4)
    one = image_features(bundle, imgs[:1])
    assert one.shape == (1, 16)
