"""tools/gpu_check.py in its CPU smoke mode: every section runs and prints its fields."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synth2real.metrics.prdc import compute_prdc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_prdc  # noqa: E402 (a tool, not part of the library)
import gpu_check  # noqa: E402


def fields(stdout, section):
    """The key=value fields of a section's RESULT line."""
    line = next(x for x in stdout.splitlines() if x.startswith(f"RESULT section={section} "))
    return dict(cell.split("=", 1) for cell in line.split()[1:])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "results.json"
    cmd = [sys.executable, str(ROOT / "tools" / "gpu_check.py"), "--smoke", "--peak-tflops", "1"]
    proc = subprocess.run(
        [*cmd, "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=1900
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout, json.loads(out.read_text())


def test_every_section_passes_and_is_reported(smoke):
    stdout, results = smoke
    assert [r["section"] for r in results] == list(gpu_check.SECTIONS)
    assert all(r["ok"] for r in results)
    assert f"gpu-check: {len(gpu_check.SECTIONS)} of {len(gpu_check.SECTIONS)} sections" in stdout


def test_generation_backoff_survives_the_out_of_memory_error(smoke):
    f = fields(smoke[0], "oom")
    # batch 8 and 4 fail, 2 fits: two halvings, every row written
    assert f["survived"] == "True" and f["oom_retries"] == "2" and f["final_batch_size"] == "2"
    assert f["images"] == "8" and f["simulated"] == "True"


def test_prdc_section_reports_the_engine_values(smoke):
    f = fields(smoke[0], "prdc")
    real, fake = bench_prdc.features(2000, 64, seed=0)
    expected = compute_prdc(real, fake, nearest_k=5, distance="cosine")
    assert int(f["n"]) == 2000 and float(f["seconds"]) > 0
    for key, value in expected.items():
        assert float(f[key]) == pytest.approx(value, abs=5e-5)  # printed to 4 digits


@pytest.mark.parametrize("arch", gpu_check.TRAIN_ARCHS)
def test_training_section_reports_the_paper_recipe(smoke, arch):
    f = fields(smoke[0], f"train:{arch}")
    assert float(f["images_per_s"]) > 0
    assert f["recipe"] == "paper" and f["optimizer"] == "adam" and f["batch_size"] == "2"


@pytest.mark.parametrize("gid", list(gpu_check.T2I))
def test_t2i_section_reports_speed_and_fraction_of_peak(smoke, gid):
    f = fields(smoke[0], f"t2i:{gid}")
    ips, tflop = float(f["images_per_s"]), float(f["tflop_per_image"])
    assert ips > 0 and tflop > 0 and f["resolution"] == "64"
    # peak 1 TFLOP/s: the fraction is the achieved TFLOP/s itself
    assert float(f["fraction_of_peak"]) == pytest.approx(ips * tflop, rel=2e-3)


def test_peak_lookup_prefers_the_specific_name():
    assert gpu_check.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert gpu_check.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert gpu_check.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert gpu_check.peak_tflops("Some GPU", None) is None
    assert gpu_check.peak_tflops("Some GPU", 100.0) == 100.0
