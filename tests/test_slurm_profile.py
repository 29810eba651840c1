"""Static checks of the SLURM profile and its CI overlay (no cluster needed).

The cluster path itself is exercised by .ci/slurm/run_stage.sh on a real one-node SLURM.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
OVERLAY = REPO / ".ci" / "slurm" / "overlay" / "config.yaml"

GPU_RULES = {
    "train_generator",
    "generate",
    "depth_probe",
    "extract_features",
    "train_classifier",
    "evaluate",
    "clipscore",
    "generate_cpc",
    "train_ipc",
    "evaluate_ipc",
}


def cluster_rules() -> set[str]:
    """Every workflow rule that runs as a cluster job (not local, not a pure target)."""
    names = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"(?m)^(?=rule )", smk.read_text())[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            if "localrule: True" not in block and re.search(r"^\s+(script|shell):", block, re.M):
                names.add(name)
    return names


CPU_RULES = cluster_rules() - GPU_RULES


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def make_overlay():
    spec = importlib.util.spec_from_file_location(
        "make_overlay", REPO / ".ci" / "slurm" / "make_overlay.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluate(expr, attempt: int, threads: int = 4):
    """Evaluate a resource value the way Snakemake does for profile expressions."""
    if isinstance(expr, int):
        return expr
    return eval(str(expr), {"attempt": attempt, "threads": threads})  # noqa: S307


@pytest.fixture(scope="module")
def profile() -> dict:
    return load(PROFILE)


@pytest.fixture(scope="module")
def cli_options() -> set[str]:
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    return {opt for action in parser._actions for opt in action.option_strings}


def test_every_profile_key_is_a_snakemake_option(profile, cli_options):
    """Catches typos and options the pinned plugin does not have (e.g. slurm-array-jobs)."""
    unknown = [key for key in profile if f"--{key}" not in cli_options]
    assert not unknown, f"not options of snakemake + installed plugins: {unknown}"


def test_overlay_keys_are_snakemake_options(cli_options):
    overlay = load(OVERLAY)
    unknown = [k for k in overlay if k != "x-clamp" and f"--{k}" not in cli_options]
    assert not unknown


def test_executor_retries_and_rerun(profile):
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1
    assert profile["rerun-incomplete"] is True
    assert profile["latency-wait"] >= 30


def test_no_account_or_partition_in_the_shipped_profile():
    text = PROFILE.read_text()
    for word in ("slurm_account", "slurm_partition", "--account", "--partition", "-A ", "-p "):
        body = "\n".join(line.split("#")[0] for line in text.splitlines())
        assert word not in body, f"{word} must come from the user's setup, not the profile"


def test_no_gres_in_slurm_extra(profile):
    sections = [profile.get("default-resources", {})] + list(profile["set-resources"].values())
    for res in sections:
        extra = str(res.get("slurm_extra", ""))
        assert "--gres" not in extra and "--gpus" not in extra


def test_every_rule_has_resources_and_threads(profile):
    assert set(profile["set-resources"]) == GPU_RULES | CPU_RULES
    assert set(profile["set-threads"]) == GPU_RULES | CPU_RULES


def test_gpu_rules_ask_for_a_gpu_and_cpus_per_gpu(profile):
    for rule in GPU_RULES:
        res = profile["set-resources"][rule]
        assert res["gpu"] >= 1, rule
        assert "cpus_per_gpu" in res, rule
        # The plugin lets a non-zero cpus_per_task win over cpus_per_gpu.
        assert res["cpus_per_task"] == 0, rule
    for rule in CPU_RULES:
        assert "gpu" not in profile["set-resources"][rule], rule


@pytest.mark.parametrize("rule", sorted(GPU_RULES | CPU_RULES))
def test_memory_and_runtime_grow_with_attempt(profile, rule):
    res = {**profile["default-resources"], **profile["set-resources"][rule]}
    threads = profile["set-threads"][rule]
    for name in ("mem_mb", "runtime"):
        values = [evaluate(res[name], attempt, threads) for attempt in (1, 2, 3)]
        assert all(isinstance(v, int) and v > 0 for v in values), (rule, name, values)
        assert values[0] < values[1] < values[2], (rule, name, values)
    cpus = res["cpus_per_gpu"] if rule in GPU_RULES else res["cpus_per_task"]
    assert evaluate(cpus, 1, threads) == threads


def test_overlay_merges_and_clamps(profile):
    mo = make_overlay()
    merged = mo.build(profile, load(OVERLAY), mem_cap=5000)
    assert "x-clamp" not in merged
    assert merged["executor"] == "slurm"
    assert merged["slurm-status-command"] == "squeue"
    assert merged["default-resources"]["slurm_partition"] == "debug"
    # the base profile's defaults survive the merge
    assert "mem_mb" in merged["default-resources"]
    for rule, res in merged["set-resources"].items():
        threads = merged["set-threads"][rule]
        assert threads == 1
        for attempt in (1, 2, 3):
            assert (
                evaluate(res.get("mem_mb", merged["default-resources"]["mem_mb"]), attempt, threads)
                <= 5000
            )
        if rule in GPU_RULES:
            assert res["gpu"] == 1
            assert evaluate(res["cpus_per_gpu"], 1, threads) == 1


def test_overlay_written_profile_is_complete(tmp_path):
    out = tmp_path / "profile"
    subprocess.run(
        [
            sys.executable,
            str(REPO / ".ci/slurm/make_overlay.py"),
            "--out",
            str(out),
            "--mem-cap-mb",
            "4096",
        ],
        check=True,
    )
    written = load(out / "config.yaml")
    assert written["executor"] == "slurm"
    assert written["set-resources"]["generate"]["gpu"] == 1


def test_toy_workflow_lints_clean():
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "-s", str(REPO / "tests/slurm/Snakefile")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


def test_no_job_arrays_with_a_plugin_that_breaks_them(profile):
    """Plugin 2.8.0 arrays delete a finished shard when another task fails (#447) and
    deadlock with a finite `jobs` (#473); reproduce with tests/slurm (see its config.yaml)."""
    from importlib.metadata import version

    major, minor, patch = (
        int(x) for x in version("snakemake-executor-plugin-slurm").split(".")[:3]
    )
    if (major, minor, patch) <= (2, 8, 0):
        assert "slurm-array-jobs" not in profile
    elif "slurm-array-jobs" in profile:
        assert profile["jobs"] == "unlimited"
