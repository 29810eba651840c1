"""Every diffusers pipeline family of the registry, end to end on CPU with tiny random weights.

Each family's tiny pipeline is built offline (tests/t2i_tiny.py), saved with save_pretrained,
loaded back through the one loader the workflow uses (load_pipeline) and run through
generate_shard, so a class-specific quirk (call keywords, tokenizer files, guidance argument)
breaks here rather than on a GPU node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import t2i_tiny
import torch

from synth2real.generate.pipelines import generate_shard, load_pipeline
from synth2real.registry import validate_registry
from synth2real.shards import REQUIRED_COLUMNS, decode_images, read_shard

FAMILIES = list(t2i_tiny.BUILDERS)
ROOT = Path(__file__).resolve().parents[1]

PROMPTS = ["goldfish", "a tabby cat, sitting on a mat", "x", "école café!"]


def rows(n: int = 4, seed0: int = 1000) -> list[dict]:
    return [
        {
            "class_id": f"n{i:08d}",
            "label": i,
            "prompt": PROMPTS[i % len(PROMPTS)],
            "seed": seed0 + i,
            "source_id": f"n{i:08d}/0",
            "class_name": f"class {i}",
            "dataset": "tiny-classname",
            "split": "train",
            "row": 40 + i,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Lazily saved and loaded tiny pipelines, one per family, shared by the module's tests."""
    cache: dict[str, tuple[Path, object]] = {}
    # Tiny tensors: OpenMP synchronisation costs more than the arithmetic (10x on 2 vCPUs).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    def get(family: str):
        if family not in cache:
            path = t2i_tiny.save_tiny_pipeline(family, tmp_path_factory.mktemp(family) / "weights")
            spec = t2i_tiny.TINY_SPECS[family]
            cache[family] = (path, load_pipeline(spec, path, "cpu", torch.float32))
        return cache[family]

    yield get
    torch.set_num_threads(threads)


def test_tiny_specs_satisfy_the_generator_schema():
    validate_registry(
        {"output_size": 8, "generators": {s["id"]: s for s in t2i_tiny.TINY_SPECS.values()}}
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_family_loads_and_generates_a_shard(family, tiny, tmp_path):
    import diffusers

    spec = t2i_tiny.TINY_SPECS[family]
    _, pipe = tiny(family)
    assert type(pipe) is getattr(diffusers, family)
    assert getattr(pipe, "safety_checker", None) is None

    out = tmp_path / "shard-000.parquet"
    stats = generate_shard(pipe, spec, rows(), out, batch_size=4, shard=0, progress=False)

    table = read_shard(out)
    assert set(REQUIRED_COLUMNS) <= set(table.column_names)
    assert stats["images"] == 4 and not stats["skipped"] and stats["images_per_s"] > 0
    images = decode_images(table)
    assert images.shape == (4, spec["output_size"], spec["output_size"], 3)
    # Random weights give noisy images, but not blank ones, and rows with different seeds and
    # prompts must not collapse onto one image.
    assert all(img.std() > 1.0 for img in images)
    assert len({img.tobytes() for img in images}) == 4
    meta = table.to_pydict()
    assert meta["prompt"] == PROMPTS
    assert meta["seed"] == [1000, 1001, 1002, 1003]
    assert meta["generator"] == [spec["id"]] * 4
    assert meta["steps"] == [2] * 4 and meta["guidance_scale"] == [2.0] * 4
    assert meta["resolution"] == [spec["resolution"]] * 4
    assert meta["row"] == [40, 41, 42, 43] and meta["shard"] == [0] * 4
    assert meta["class_name"] == [f"class {i}" for i in range(4)]


@pytest.mark.parametrize("family", FAMILIES)
def test_row_image_does_not_depend_on_batch_size(family, tiny, tmp_path):
    spec = t2i_tiny.TINY_SPECS[family]
    _, pipe = tiny(family)
    generate_shard(pipe, spec, rows(), tmp_path / "b4.parquet", batch_size=4, progress=False)
    generate_shard(pipe, spec, rows(), tmp_path / "b1.parquet", batch_size=1, progress=False)
    a = decode_images(read_shard(tmp_path / "b4.parquet")).astype(int)
    b = decode_images(read_shard(tmp_path / "b1.parquet")).astype(int)
    # Same noise per row, so the same image up to float rounding: a batched kernel may differ
    # from the unbatched one in the last bit (PixArt's tiny model by 3e-7), and a value that
    # sits on a rounding boundary of the uint8 conversion then flips by one. Mixed-up seeds
    # would change every pixel.
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.01


def test_same_config_and_seed_give_byte_identical_shards(tiny, tmp_path):
    family = "StableDiffusionPipeline"
    spec = t2i_tiny.TINY_SPECS[family]
    _, pipe = tiny(family)
    generate_shard(pipe, spec, rows(), tmp_path / "a.parquet", batch_size=2, progress=False)
    generate_shard(pipe, spec, rows(), tmp_path / "b.parquet", batch_size=2, progress=False)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    # ...and the seed is what makes the image: another seed, another image.
    generate_shard(pipe, spec, rows(seed0=7), tmp_path / "c.parquet", batch_size=2, progress=False)
    a = decode_images(read_shard(tmp_path / "a.parquet"))
    c = decode_images(read_shard(tmp_path / "c.parquet"))
    assert not np.array_equal(a[0], c[0])


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import t2i_tiny
    from synth2real.generate.pipelines import generate_shard, load_pipeline

    weights, out, marker = sys.argv[1:4]
    spec = t2i_tiny.TINY_SPECS["StableDiffusionPipeline"]
    pipe = load_pipeline(spec, weights, "cpu", torch.float32)
    calls = []
    real_call = type(pipe).__call__

    def slow_call(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            Path(marker).write_text("mid-shard")
            time.sleep(120)
        return real_call(self, *args, **kwargs)

    type(pipe).__call__ = slow_call
    rows = [dict(class_id="n%d" % i, label=i, prompt="goldfish", seed=1000 + i, source_id="s%d" % i)
            for i in range(4)]
    generate_shard(pipe, spec, rows, out, batch_size=1, progress=False)
    """
)


def test_killed_job_rerun_leaves_one_complete_shard(tiny, tmp_path):
    family = "StableDiffusionPipeline"
    spec = t2i_tiny.TINY_SPECS[family]
    weights, pipe = tiny(family)
    out_dir = tmp_path / "shards"
    out_dir.mkdir()
    out = out_dir / "shard-000.parquet"
    marker = tmp_path / "marker"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT / "workflow" / "lib")]),
    )
    child = subprocess.Popen(
        [sys.executable, str(script), str(weights), str(out), str(marker)], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.poll() is None, "generation child exited before reaching the second batch"
            assert time.monotonic() < deadline, "child never reached the second batch"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()
    # A writer killed during the rename-in leaves its temp file behind; the rerun must clean it.
    (out_dir / f".{out.name}.abc123.tmp").write_bytes(b"half a parquet file")

    reference = tmp_path / "reference.parquet"
    small = [
        dict(class_id=f"n{i}", label=i, prompt="goldfish", seed=1000 + i, source_id=f"s{i}")
        for i in range(4)
    ]
    generate_shard(pipe, spec, small, reference, batch_size=4, progress=False)
    stats = generate_shard(pipe, spec, small, out, batch_size=1, progress=False)

    assert not stats["skipped"]
    assert sorted(p.name for p in out_dir.iterdir()) == [out.name]
    assert read_shard(out).num_rows == 4
    assert out.read_bytes() == reference.read_bytes()
    again = generate_shard(pipe, spec, small, out, batch_size=1, progress=False)
    assert again["skipped"] and again["images"] == 0
