"""The throughput benchmark: architecture configs, FLOP counting, and the CLI on tiny models."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import t2i_tiny
import torch
import yaml
from torch.nn.attention import SDPBackend, sdpa_kernel

from synth2real.registry import cfg_factor, load_registry

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "tools" / "t2i_architectures"
sys.path.insert(0, str(ROOT / "tools"))
import t2i_bench  # noqa: E402 (a tool, not part of the library)

#: Headline sizes from the model cards / papers (billions; weights + persistent buffers, i.e.
#: what the safetensors files hold). The configs in tools/t2i_architectures must reproduce them.
PUBLISHED_B = {
    ("sd15", "denoiser"): 0.86,  # SD 1.5 UNet, "860M"
    ("sd21", "denoiser"): 0.865,  # SD 2.1 UNet, "865M"
    ("sdxl", "denoiser"): 2.6,  # SDXL UNet, "2.6B"
    ("pixart", "denoiser"): 0.6,  # PixArt-alpha XL/2, "0.6B"
    ("sd30", "denoiser"): 2.0,  # SD3 Medium MMDiT, "2B"
    ("sd35", "denoiser"): 2.5,  # SD3.5 Medium MMDiT-X, "2.5B"
    ("sd35-large", "denoiser"): 8.1,  # SD3.5 Large, "8.1B"
    ("flux-dev", "denoiser"): 12.0,  # FLUX.1, "12B"
    ("sana", "denoiser"): 1.6,  # Sana 1600M
    ("lumina2", "denoiser"): 2.6,  # Lumina-Image 2.0 Next-DiT, "2.6B"
    ("qwen", "denoiser"): 20.0,  # Qwen-Image MMDiT, "20B"
    ("sd15", "text_encoder"): 0.123,  # CLIP ViT-L/14 text tower
    ("sdxl", "text_encoder_2"): 0.695,  # OpenCLIP ViT-bigG/14 text tower
    ("flux-dev", "text_encoder_2"): 4.76,  # T5-v1.1-XXL encoder
    ("sana", "text_encoder"): 2.6,  # Gemma-2-2B
    ("qwen", "text_encoder"): 8.3,  # Qwen2.5-VL-7B (with vision tower)
}


def _numel(module: torch.nn.Module) -> int:
    return sum(t.numel() for t in module.state_dict().values())


@pytest.mark.parametrize("gid, role", sorted(PUBLISHED_B))
def test_architecture_configs_match_published_sizes(gid, role):
    config = json.loads((ARCH / gid / f"{role}.json").read_text())
    module = t2i_bench.build_module(config, "meta", torch.bfloat16)
    assert _numel(module) / 1e9 == pytest.approx(PUBLISHED_B[(gid, role)], rel=0.05)


def test_every_registry_generator_has_architecture_configs():
    registry = load_registry(ROOT / "config" / "generators.yaml")
    for gid, spec in registry.items():
        folder = t2i_bench.architecture_dir(ARCH, spec)
        assert folder.name == gid
        roles = {p.stem for p in folder.glob("*.json")}
        assert {"denoiser", "vae"} <= roles, gid
        assert set(t2i_bench.text_lengths(spec, 77)) == roles - {"denoiser", "vae"}, gid


def test_clip_text_flops_match_a_hand_count():
    # CLIP ViT-L/14 text tower on 77 tokens: every layer does 2*77*(4*768^2 + 2*768*3072)
    # multiply-adds-as-FLOPs in its linears plus 2 * 2*77*77*768 in attention (QK^T and AV).
    registry = load_registry(ROOT / "config" / "generators.yaml")
    comps = t2i_bench.load_components(
        ARCH / "sd15", "meta", torch.float32, roles=["denoiser", "text_encoder", "vae"]
    )
    flops = t2i_bench.count_flops(registry["sd15"], comps)
    per_layer = 2 * 77 * (4 * 768**2 + 2 * 768 * 3072) + 2 * 2 * 77 * 77 * 768
    assert flops["text"] == 12 * per_layer
    assert flops["denoiser"] > 1e11 and flops["vae"] > flops["denoiser"]


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bench")
    arch = t2i_tiny.write_tiny_architectures(root / "arch")
    registry = root / "config" / "generators.yaml"
    registry.parent.mkdir()
    registry.write_text(
        yaml.safe_dump(
            {"output_size": 8, "generators": {s["id"]: s for s in t2i_tiny.TINY_SPECS.values()}}
        )
    )
    yield arch, registry
    torch.set_num_threads(threads)


@pytest.mark.parametrize("family", list(t2i_tiny.BUILDERS))
def test_meta_flop_count_equals_a_real_forward(family, tiny_arch):
    arch, _ = tiny_arch
    spec = t2i_tiny.TINY_SPECS[family]
    folder = t2i_bench.architecture_dir(arch, spec)
    on_meta = t2i_bench.count_flops(spec, t2i_bench.load_components(folder, "meta", torch.float32))
    # PyTorch's fused CPU attention kernel has no FLOP formula; the math path is what meta runs.
    with sdpa_kernel(SDPBackend.MATH):
        real = t2i_bench.count_flops(
            spec, t2i_bench.load_components(folder, "cpu", torch.float32), device="cpu"
        )
    assert on_meta == real
    assert all(v > 0 for v in real.values())


def test_estimated_speed_uses_flops_and_mfu():
    res = t2i_bench.BenchResult(
        "g",
        "P",
        "baseline",
        steps=10,
        cfg=2,
        resolution=512,
        flops={"denoiser": 1e12, "text": 5e11, "vae": 2e12},
    )
    assert res.flops_per_image == 10 * 2 * 1e12 + 2 * 5e11 + 2e12
    row = t2i_bench.summarise(res, peak_tflops=1000.0, n_images=3600, assumed_mfu=0.5)
    assert row["images_per_s"] == pytest.approx(500e12 / 23e12)
    assert row["fraction_of_peak"] == pytest.approx(0.5)
    assert row["gpu_hours"] == pytest.approx(3600 / row["images_per_s"] / 3600)
    assert t2i_bench.grid_images() == 2 * 200 * 600


GENS = ["tiny-stablediffusion", "tiny-flux", "tiny-qwenimage"]


def test_bench_script_measures_tiny_models_on_cpu(tiny_arch, tmp_path):
    arch, registry = tiny_arch
    out = tmp_path / "bench.tsv"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench_t2i_throughput.py"),
            "--registry",
            str(registry),
            "--config-dir",
            str(arch),
            "--device",
            "cpu",
            "--measure",
            "--batch-sizes",
            "1,2",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--peak-tflops",
            "2",
            "--classes",
            "10",
            "--train-per-class",
            "5",
            "--val-per-class",
            "1",
            "--test-per-class",
            "1",
            "--generators",
            ",".join(GENS),
            "--levers",
            "baseline,fused_qkv",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    specs = {s["id"]: s for s in t2i_tiny.TINY_SPECS.values()}
    assert [(r["generator"], r["levers"]) for r in rows] == [
        (g, lv) for g in GENS for lv in ("baseline", "fused_qkv")
    ]
    best: dict[str, float] = {}
    for r in rows:
        ips, flops = float(r["images_per_s"]), float(r["tflop_per_image"]) * 1e12
        assert r["speed_source"] == "measured" and ips > 0 and int(r["batch_size"]) in (1, 2)
        assert int(r["grid_images"]) == 2 * 10 * 7
        assert float(r["gpu_hours"]) == pytest.approx(140 / ips / 3600)
        assert float(r["fraction_of_peak"]) == pytest.approx(ips * flops / 2e12)
        assert int(r["cfg"]) == cfg_factor(specs[r["generator"]])
        best[r["generator"]] = min(best.get(r["generator"], float("inf")), float(r["gpu_hours"]))
    assert "tiny-stablediffusion " in proc.stdout
    assert f"total: {sum(best.values()):,.1f} GPU-hours" in proc.stdout
