"""The whole DAG on a reduced demo config: real data to report, then resume behaviour."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "config" / "e2e.yaml"
PROBES = {"rgb", "texture", "lowpass", "highpass"}
SYNTH = ["ddpm-cfg1-classname", "ddpm-cfg7.5-classname"]

pytestmark = pytest.mark.slow


def snakemake(workdir, *args, check=True):
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(CONFIG), "--cores", "2", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def job_counts(dry_run_output):
    """The 'Job stats' table of a dry run as {rule: count}."""
    counts = {}
    for line in dry_run_output.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    snakemake(workdir, "all")
    return workdir


def test_summary_has_every_row(run_dir):
    res = run_dir / "results" / "e2e"
    summary = pd.read_csv(res / "summary.csv")
    assert list(summary.columns) == ["train_dataset", "probe", "arch", "test_dataset", "top1"]
    assert summary.top1.between(0, 1).all()
    real = summary[(summary.train_dataset == "real") & (summary.test_dataset == "real")]
    assert set(real.probe) == PROBES
    rgb_baseline = float(real[real.probe == "rgb"].top1.iloc[0])
    assert rgb_baseline > 0.5, "even 3 epochs on 300 digits should beat chance (0.1) by far"
    for synth in SYNTH:
        s2r = summary[(summary.train_dataset == synth) & (summary.test_dataset == "real")]
        assert set(s2r.probe) == PROBES, synth
        r2s = summary[(summary.train_dataset == "real") & (summary.test_dataset == synth)]
        assert set(r2s.probe) == PROBES, synth
    assert len(summary) == 4 * (1 + len(SYNTH)) + 4 * len(SYNTH)


def test_distribution_table(run_dir):
    dist = pd.read_csv(run_dir / "results" / "e2e" / "distribution.csv")
    assert list(dist.columns) == ["dataset", "precision", "recall", "density", "coverage"]
    assert list(dist.dataset) == SYNTH
    assert dist[["precision", "recall", "coverage"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (dist.density >= 0).all()


def test_figures_and_sidecars(run_dir):
    figs = run_dir / "results" / "e2e" / "figures"
    for name in ("accuracy", "probes", "density_coverage", "transfer"):
        for ext in ("png", "pdf", "csv"):
            assert (figs / f"{name}.{ext}").stat().st_size > 0
    acc = pd.read_csv(figs / "accuracy.csv")
    assert sorted(acc.train_dataset) == sorted(SYNTH)
    summary = pd.read_csv(run_dir / "results" / "e2e" / "summary.csv").set_index(
        ["train_dataset", "probe", "arch", "test_dataset"]
    )
    for r in acc.itertuples():
        assert r.top1 == pytest.approx(
            summary.loc[(r.train_dataset, "rgb", "smallcnn", "real"), "top1"]
        )
    probes = pd.read_csv(figs / "probes.csv")
    assert len(probes) == len(SYNTH) * 3  # texture, lowpass, highpass per synthetic dataset
    for synth in SYNTH:
        assert (figs / "samples" / f"{synth}.png").stat().st_size > 0
    assert (figs / "spectra.png").stat().st_size > 0
    slopes = pd.read_csv(run_dir / "results" / "e2e" / "tables" / "spectra.csv")
    assert sorted(slopes.dataset) == sorted(["real", *SYNTH])
    assert slopes.set_index("dataset").alpha["real"] > 0.5  # digits have a steep spectrum


def test_report_contains_every_figure(run_dir):
    report = run_dir / "results" / "e2e" / "report.html"
    snakemake(run_dir, "all", "--report", str(report))
    html = report.read_text(errors="replace")
    for name in (
        "accuracy.png",
        "probes.png",
        "density_coverage.png",
        "transfer.png",
        "summary.csv",
    ):
        assert name in html, name


def test_rerun_does_nothing_and_deleted_shard_reruns_alone(run_dir):
    assert "Nothing to be done" in snakemake(run_dir, "all", "-n").stdout
    shard = run_dir / "results" / "e2e" / "data" / SYNTH[1] / "train" / "shard-00001.parquet"
    saved = shard.read_bytes()
    shard.unlink()
    counts = job_counts(snakemake(run_dir, "all", "-n").stdout)
    assert counts.get("generate") == 1
    for upstream in ("real_data", "train_generator", "prompts"):
        assert upstream not in counts, counts
    # downstream of that shard only: its dataset's 4 models and their evaluations
    assert counts.get("train_classifier") == 4
    assert counts.get("frequency_probe") == 2
    assert counts.get("extract_features") == 1 and counts.get("distribution") == 1
    # regenerating it gives the very same bytes (row seeds, deterministic DDIM)
    snakemake(run_dir, shutil.os.path.relpath(shard, run_dir))
    assert shard.read_bytes() == saved
