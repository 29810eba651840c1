"""The exact PRDC engine must return prdc.compute_prdc's values bit for bit.

Small chunk sizes force many blocks (off-diagonal merges, tile tails, threshold folding),
and cases are chosen where float32 arithmetic alone would decide comparisons wrongly: ties on
an integer grid, duplicated points, a large common offset.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import prdc
import pytest
from sklearn.metrics import pairwise_distances

import synth2real
from synth2real.metrics import prdc as distribution
from synth2real.metrics.prdc import _Engine, compute_prdc

KEYS = ("precision", "recall", "density", "coverage")
ROOT = Path(__file__).resolve().parents[1]


def reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        out = prdc.compute_prdc(real, fake, nearest_k=k)
    return {key: float(out[key]) for key in KEYS}


def gaussian(n_real, n_fake, dim, seed, dtype=np.float32, shift=0.05, spread=1.1):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim)).astype(dtype)
    fake = (rng.standard_normal((n_fake, dim)) * spread + shift).astype(dtype)
    return real, fake


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "seed", "chunk", "workers"),
    [
        (300, 200, 16, 5, 0, 64, 1),
        (257, 403, 64, 3, 1, 48, 2),
        (500, 500, 128, 5, 2, 128, 2),
        (150, 151, 8, 10, 3, 32, 1),
        (400, 350, 768, 5, 4, 96, 2),
        (64, 80, 5, 1, 5, 32, 2),
    ],
)
def test_euclidean_equals_prdc_exactly(n_real, n_fake, dim, k, seed, chunk, workers):
    real, fake = gaussian(n_real, n_fake, dim, seed)
    out = compute_prdc(real, fake, k, chunk_size=chunk, workers=workers, device="cpu")
    assert out == reference(real, fake, k)
    assert all(type(v) is float for v in out.values())


def test_float64_and_mixed_dtypes_equal_prdc():
    real, fake = gaussian(300, 260, 32, seed=6, dtype=np.float64)
    assert compute_prdc(real, fake, 4, chunk_size=64) == reference(real, fake, 4)
    mixed_fake = fake.astype(np.float32)
    assert compute_prdc(real, mixed_fake, 4, chunk_size=64) == reference(real, mixed_fake, 4)


def test_ties_and_duplicates_on_an_integer_grid_equal_prdc():
    # Values 0..3 in 8 dims: many pairs share a distance, many points coincide, so strict
    # "<" against a radius is decided by exact ties.
    rng = np.random.default_rng(7)
    real = rng.integers(0, 4, (400, 8)).astype(np.float32)
    fake = rng.integers(0, 4, (300, 8)).astype(np.float32)
    out = compute_prdc(real, fake, 5, chunk_size=64)
    assert out == reference(real, fake, 5)
    d = pairwise_distances(real, fake)
    radii = np.sort(pairwise_distances(real, real), axis=1)[:, 5]
    assert (d == radii[:, None]).sum() > 100  # the case really is full of ties


def test_fake_subset_of_real_and_large_offset_equal_prdc():
    rng = np.random.default_rng(8)
    real = rng.standard_normal((500, 64)).astype(np.float32)
    assert compute_prdc(real, real[:300].copy(), 5, chunk_size=64) == reference(real, real[:300], 5)
    # A common offset of 100 with spread 1e-3: float32 carries ~3 significant digits of
    # the distances, so the fast pass alone would get many comparisons wrong.
    real = (rng.standard_normal((400, 32)) * 1e-3 + 100).astype(np.float32)
    fake = (rng.standard_normal((300, 32)) * 1.2e-3 + 100).astype(np.float32)
    assert compute_prdc(real, fake, 5, chunk_size=64) == reference(real, fake, 5)


def test_exact_pass_and_fallback_are_exercised(monkeypatch):
    """Widen the error band 1000x (and keep no spare neighbours): far more pairs go through
    the exact float64 pass and whole-row fallbacks, and the answer must not move."""
    real, fake = gaussian(300, 280, 24, seed=9)
    expected = reference(real, fake, 5)
    engine = _Engine(real, fake, 5, "euclidean", 64, "cpu")
    assert engine.run() == expected
    normal_pairs = engine.stats["exact_pairs"]
    assert normal_pairs > 0

    monkeypatch.setattr(distribution, "_EXTRA", 0)
    wide = _Engine(real, fake, 5, "euclidean", 64, "cpu")
    wide.c32 *= 1000
    assert wide.run() == expected
    assert wide.stats["exact_pairs"] > 5 * normal_pairs
    assert wide.stats["fallback_rows"] > 0


def brute_force_cosine(real, fake, k):
    """prdc's formulas on sklearn's cosine distances, all in float64."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def radii(x):
        return np.sort(pairwise_distances(x, x, metric="cosine"), axis=1)[:, k]

    r_real, r_fake = radii(real), radii(fake)
    d = pairwise_distances(real, fake, metric="cosine")
    inside = d < r_real[:, None]
    return {
        "precision": float(inside.any(axis=0).mean()),
        "recall": float((d < r_fake[None, :]).any(axis=1).mean()),
        "density": float((1.0 / k) * inside.sum(axis=0).mean()),
        "coverage": float((d.min(axis=1) < r_real).mean()),
    }


@pytest.mark.parametrize(("n_real", "n_fake", "dim", "k"), [(300, 250, 32, 5), (200, 330, 96, 3)])
def test_cosine_equals_brute_force(n_real, n_fake, dim, k):
    real, fake = gaussian(n_real, n_fake, dim, seed=dim, shift=0.3)
    real += 0.3
    out = compute_prdc(real, fake, k, distance="cosine", chunk_size=64)
    assert out == brute_force_cosine(real, fake, k)
    # cosine ignores scale, euclidean does not
    scaled = compute_prdc(real * 3, fake * 0.5, k, distance="cosine", chunk_size=64)
    assert scaled == brute_force_cosine(real * 3, fake * 0.5, k)


def test_memory_is_blocks_not_a_full_matrix():
    real, fake = gaussian(700, 650, 16, seed=10)
    engine = _Engine(real, fake, 5, "euclidean", 64, "cpu")
    assert engine.run() == reference(real, fake, 5)
    # the only N-by-N-sized object would be the block buffer: it holds one padded block
    assert engine._local.buf.size <= (64 + 16) * 64


def test_inputs_are_validated_and_exposed_lazily():
    real, fake = gaussian(20, 20, 4, seed=11)
    with pytest.raises(ValueError, match="more than nearest_k"):
        compute_prdc(real[:5], fake, 5)
    with pytest.raises(ValueError, match="dims differ"):
        compute_prdc(real, fake[:, :3], 3)
    with pytest.raises(ValueError, match="distance"):
        compute_prdc(real, fake, 3, distance="manhattan")
    bad = real.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        compute_prdc(bad, fake, 3)
    assert synth2real.compute_prdc is compute_prdc


def test_bench_script_runs_tiny_and_reports_equal_values(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_prdc.py"),
            "--sizes",
            "200",
            "--big",
            "500",
            "--dim",
            "64",
            "--json",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 200 | euclidean |" in proc.stdout and "| 200 | cosine |" in proc.stdout
    assert "DIFFERENT" not in proc.stdout
    assert "engine alone at N=500" in proc.stdout
    assert proc.stdout.strip().endswith("all values equal: True")
    data = json.loads(out_json.read_text())
    assert [r["distance"] for r in data["sizes"]] == ["euclidean", "cosine"]
    row = data["sizes"][0]
    assert row["equal"] and row["prdc"]["values"] == row["engine"]["values"]
    assert row["engine"]["peak_rss_mib"] > 0 and data["big"]["n"] == 500


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_torch_path_used_on_cuda_equals_numpy_path(distance):
    """On CUDA the engine runs on torch tensors (torch GEMMs, topk, threshold scans) instead
    of NumPy (BLAS, syrk, argpartition, flatnonzero). Run that backend on the CPU: it must give
    the same four values."""
    real, fake = gaussian(310, 270, 40, seed=11)
    ground = compute_prdc(real, fake, 5, distance=distance, chunk_size=64, workers=1)
    if distance == "euclidean":
        assert ground == reference(real, fake, 5)
    engine = _Engine(real, fake, 5, distance, 64, "cpu", backend="torch")
    assert not engine.xp.host
    assert engine.run() == ground


def l2_normalised(x):
    """Unit rows in float64 (how the official code's cosine distance sees the features)."""
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "dtype"),
    [(300, 250, 32, 5, np.float32), (200, 330, 96, 3, np.float64), (500, 500, 768, 5, np.float32)],
)
def test_cosine_equals_prdc_on_l2_normalised_features(n_real, n_fake, dim, k, dtype):
    """The paper config's ``distance: cosine`` is prdc (Euclidean) on unit vectors: the two
    distances are monotone (|a - b|^2 = 2 - 2 cos), so all four values agree exactly."""
    real, fake = gaussian(n_real, n_fake, dim, seed=dim, dtype=dtype, shift=0.3)
    real += dtype(0.3)
    out = compute_prdc(real, fake, k, distance="cosine", chunk_size=64)
    expected = reference(l2_normalised(real), l2_normalised(fake), k)
    assert out == expected
    assert out != compute_prdc(real, fake, k, distance="euclidean", chunk_size=64)
