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
    "extract_reference_features",
    "train_classifier",
    "evaluate",
    "evaluate_real_model",
    "clipscore",
    "generate_cpc",
    "train_ipc",
    "evaluate_ipc",
}


def local_rules() -> set[str]:
    """The rules of the Snakefile's `localrules:` directive (they run in the controller)."""
    m = re.search(r"(?m)^localrules:\n((?:    \w+,?\n)+)", (REPO / "Snakefile").read_text())
    return set(re.findall(r"\w+", m.group(1))) if m else set()


def cluster_rules() -> set[str]:
    """Every workflow rule that runs as a cluster job (not local, not a pure target)."""
    names, uses = set(), []
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        # Rules may sit under an `if` (captions / digits_captions): indented heads count too.
        for block in re.split(r"(?m)^(?= *rule )", text)[1:]:
            name = re.match(r" *rule (\w+):", block).group(1)
            if "localrule: True" not in block and re.search(r"^\s+(script|shell):", block, re.M):
                names.add(name)
        uses += re.findall(r"(?m)^use rule (\w+) as (\w+)", text)
    names |= {name for base, name in uses if base in names}  # `use rule` inherits the body
    return names - local_rules()


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
        assert "cpus_per_task" not in res, rule
    for rule in CPU_RULES:
        assert "gpu" not in profile["set-resources"][rule], rule


@pytest.mark.parametrize("rule", sorted(GPU_RULES | CPU_RULES))
def test_memory_and_runtime_grow_with_attempt(profile, rule):
    res = profile["set-resources"][rule]
    threads = profile["set-threads"][rule]
    for name in ("mem_mb", "runtime"):
        values = [evaluate(res[name], attempt, threads) for attempt in (1, 2, 3)]
        assert all(isinstance(v, int) and v > 0 for v in values), (rule, name, values)
        assert values[0] < values[1] < values[2], (rule, name, values)
    # CPUs: the plugin asks for `threads` (--cpus-per-task) unless told otherwise.
    if rule in GPU_RULES:
        assert evaluate(res["cpus_per_gpu"], 1, threads) == threads
    assert "cpus_per_task" not in res


def test_no_default_resources_so_a_site_profile_replaces_nothing(profile):
    """A later --profile's `default-resources` (the account) replaces this profile's whole
    key; with none here, nothing of the workflow's own settings is lost."""
    assert "default-resources" not in profile


def test_aggregators_are_local_rules():
    assert {"summarize", "figures", "generator_page", "run_info", "gather_ipc"} <= local_rules()
    assert not local_rules() & GPU_RULES


def test_overlay_merges_and_clamps(profile):
    mo = make_overlay()
    merged = mo.build(profile, load(OVERLAY), mem_cap=5000)
    assert "x-clamp" not in merged
    assert merged["executor"] == "slurm"
    assert merged["slurm-status-command"] == "squeue"
    assert "default-resources" not in merged  # partitions and account: .ci/slurm/site
    for rule, res in merged["set-resources"].items():
        threads = merged["set-threads"][rule]
        assert threads == 1
        for attempt in (1, 2, 3):
            assert evaluate(res["mem_mb"], attempt, threads) <= 5000
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


# --- partitions, accounts, the site profile ------------------------------------------------
SITE_PROFILES = [REPO / "profiles" / "site-example", REPO / ".ci" / "slurm" / "site"]


class FakeJob:
    """What the plugin's partition scoring reads of a job: name, threads, resources.get."""

    def __init__(self, name: str, threads: int, **resources):
        self.name, self.threads, self._res = name, threads, resources
        self.resources = self

    def get(self, key, default=None):
        return self._res.get(key, default)


def profile_job(profile: dict, rule: str, attempt: int = 1) -> FakeJob:
    threads = profile["set-threads"][rule]
    res = {k: evaluate(v, attempt, threads) for k, v in profile["set-resources"][rule].items()}
    return FakeJob(rule, threads, **res)


@pytest.mark.parametrize("site", SITE_PROFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_partition_config_sends_gpu_rules_to_gpu_and_the_rest_to_cpu(profile, site):
    """The plugin's own selection (2.8.0 partitions.py) over the site's partition file."""
    from snakemake_executor_plugin_slurm.partitions import get_best_partition, read_partition_file

    site_cfg = load(site / "config.yaml")
    partitions = read_partition_file(site / site_cfg["slurm-partition-config"])
    log = type("Log", (), {"info": print, "warning": print, "debug": print})()
    for rule in sorted(GPU_RULES | CPU_RULES):
        for attempt in (1, 3):  # the retries' bigger requests still fit
            job = profile_job(profile, rule, attempt)
            want = "gpu" if rule in GPU_RULES else "cpu"
            assert get_best_partition(partitions, job, log) == want, (rule, attempt)


def test_site_profiles_set_only_what_profiles_slurm_leaves_out(profile):
    for site in SITE_PROFILES:
        cfg = load(site / "config.yaml")
        assert not set(cfg) & set(profile), site  # a shared key would replace ours
        assert set(cfg.get("default-resources", {})) <= {"slurm_account"}, site
        assert (site / cfg["slurm-partition-config"]).is_file()
    assert "default-resources" not in load(SITE_PROFILES[1] / "config.yaml")  # CI: no account


def test_site_profile_layers_on_profiles_slurm(tmp_path):
    """`--profile profiles/slurm --profile SITE`: the account from the site, every rule's
    memory and runtime still from profiles/slurm (dry run of the toy workflow)."""
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "tests/slurm/Snakefile"),
         "--profile", str(REPO / "profiles/slurm"), "--profile", str(SITE_PROFILES[0]),
         "--directory", str(tmp_path), "-p", "results/generate/000.txt"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    block = out[out.index("rule generate:") :]
    resources = next(line for line in block.splitlines() if "resources:" in line)
    assert "slurm_account=my_account" in resources, resources
    assert "mem_mb=32000" in resources and "runtime=240" in resources, resources


def test_no_account_flag_is_ignored_by_the_pinned_plugin(monkeypatch):
    """Plugin 2.8.0 declares --slurm-no-account but never reads it (the check was lost in a
    refactor): with no slurm_account it still guesses through sacct, and submits without -A
    when the guess finds none. The README documents this; when a plugin upgrade makes this
    test fail, the flag works and the README's no-account advice can say so."""
    import snakemake_executor_plugin_slurm as plugin

    guesses = []
    monkeypatch.setattr(plugin, "get_account", lambda logger: guesses.append(1))
    executor = plugin.Executor.__new__(plugin.Executor)
    executor._fallback_account_arg = None
    executor.logger = type("Log", (), {"warning": print, "info": print})()
    executor.workflow = type(
        "W", (), {"executor_settings": plugin.ExecutorSettings(no_account=True)}
    )
    assert next(executor.get_account_arg(FakeJob("r", 1))) == ""  # no -A
    assert guesses == [1], "the pinned plugin honours no_account now: update the README"


# --- the controller job -----------------------------------------------------------------
CONTROLLER = REPO / "profiles" / "slurm" / "controller.sbatch"


def test_controller_sbatch_header():
    lines = CONTROLLER.read_text().splitlines()
    first_command = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    sbatch = [line for line in lines if line.startswith("#SBATCH")]
    assert all(lines.index(line) < first_command for line in sbatch)  # sbatch stops at code
    text = "\n".join(sbatch)
    assert "--output=logs/controller-%j.log" in text and "--signal=B:TERM@" in text
    assert "--account" not in text and "--partition" not in text  # the user's sbatch -A/-p


def test_controller_unlocks_runs_and_turns_sigterm_into_sigint(tmp_path):
    """Outside SLURM, with a fake snakemake: --unlock first, then the run with the profile,
    the job-name prefix and the user's args; SIGTERM reaches Snakemake as SIGINT (on which
    it cancels its jobs); a second controller of the same work dir would refuse."""
    import os
    import signal
    import time

    calls = tmp_path / "calls.txt"
    fake = tmp_path / "snakemake"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >>{calls}\n'
        'case " $* " in *" --unlock "*) exit 0 ;; esac\n'
        f"trap 'echo INT >>{calls}; exit 130' INT\n"
        "while :; do sleep 0.1; done\n"
    )
    fake.chmod(0o755)
    work = tmp_path / "work"
    env = {**os.environ, "SNAKEMAKE": str(fake), "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["bash", str(CONTROLLER), "--directory", str(work), "all"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.time() + 30
    while time.time() < deadline and (
        not calls.exists() or len(calls.read_text().splitlines()) < 2
    ):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    unlock, run, *rest = calls.read_text().splitlines()
    assert unlock.endswith("--unlock") and "--profile profiles/slurm" in unlock
    assert re.search(
        r"--profile profiles/slurm --slurm-jobname-prefix s2r-\d+ --directory \S+ all$", run
    ), run
    assert rest == ["INT"], out
    assert proc.returncode == 130, out
    assert (work / ".snakemake" / "synth2real-controller.jobid").is_file()


def test_training_asks_for_the_node_local_disk_of_its_decoded_cache():
    """The paper grid (config/config.yaml: decoded_cache auto, 4096 MB in memory): a main
    model streams its 100k-image train split through the cache and asks for that disk; its
    10k val split and a 100-per-class IPC subset fit in memory (no cache, no --tmp). A 16-bit
    high-pass view takes twice the disk."""
    real = "results/paper/models/real/rgb/resnet50/model.pt"
    high = "results/paper/models/real/highpass/resnet50/model.pt"
    ipc = "results/paper/scaling/models/sd15-caption/ipc100/rgb/resnet50/model.pt"
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", real, high, ipc,
         "--configfile", "config/config.yaml"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    jobs = re.findall(
        r"rule (train_classifier|train_ipc):.*?output: (\S+).*?slurm_extra=(\S*)", out, re.S
    )
    extra = {(rule, "/highpass/" in output): tmp for rule, output, tmp in jobs}
    train_bytes = 500 * 200 * 256 * 256 * 3  # images per class x classes x uint8 RGB at 256 px
    assert extra["train_classifier", False] == f"--tmp={-(-train_bytes * 102 // (100 * 2**20))}M"
    assert extra["train_classifier", True] == f"--tmp={-(-2 * train_bytes * 102 // (100 * 2**20))}M"
    assert extra["train_ipc", False] == ""
