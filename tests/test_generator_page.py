"""The per-generator target builds only that generator's jobs (and the shared real ones).

A dry run in an empty directory lists every job the target needs, so it shows exactly what
`snakemake results/demo/generators/<g>/page.md` would run, without running anything.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from synth2real import catalog

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.yaml"
GENERATORS = ["ddpm-cfg1", "ddpm-cfg1.5", "ddpm-cfg2.5"]


def dry_run(tmp_path, *targets):
    # Targets go before --configfile: it takes several values.
    cmd = [sys.executable, "-m", "snakemake", "-n", *targets, "--configfile", str(DEMO),
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def jobs(dry_run_output):
    """(rule, output/wildcards text) of every job in a dry run."""
    out = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            lines = [ln.strip() for ln in block.splitlines()]
            files = [ln for ln in lines if ln.startswith(("output:", "wildcards:", "input:"))]
            out.append((m.group(1), "\n".join(files)))
    return out


@pytest.mark.parametrize("generator", ["ddpm-cfg2.5"])  # the one with IPC curves
def test_page_target_runs_only_its_generator(tmp_path, generator):
    listed = jobs(dry_run(tmp_path, f"results/demo/generators/{generator}/page.md"))
    rules = [r for r, _ in listed]
    others = [g for g in GENERATORS if g != generator]
    for rule, files in listed:
        for other in others:
            assert other not in files, f"{rule} touches {other}:\n{files}"
    assert rules.count("generator_page") == 1
    page = next(files for rule, files in listed if rule == "generator_page")
    for fig in catalog.page_figures():  # every figure of the catalog, its point highlighted
        for ext in ("png", "pdf", "csv"):
            assert f"results/demo/generators/{generator}/figures/{fig.name}.{ext}" in page
    # its own data, models, metrics and IPC points ...
    assert rules.count("generate") == 2 * 3  # train, val, test of its two prompt types
    assert rules.count("generate_cpc") == 1  # its reduced captions-per-class train split
    assert rules.count("train_classifier") == 3 * 4  # real and its 2 datasets, 4 probes each
    # real and its 2 datasets at IPC 10 and 30, its CPC variant at 10, 30 and 100
    assert rules.count("train_ipc") == 3 * 2 + 3
    # ... the shared real-data jobs, and nothing that needs every generator
    assert {"real_data", "train_generator"} <= set(rules)
    for whole_run in ("summarize", "figures", "gather_distribution", "spectra_figure", "all"):
        assert whole_run not in rules


def test_whole_run_has_a_page_per_generator(tmp_path):
    rules = [r for r, _ in jobs(dry_run(tmp_path, "all"))]
    assert rules.count("generator_page") == len(GENERATORS)
    assert rules.count("figures") == 1 and rules.count("results_markdown") == 1
