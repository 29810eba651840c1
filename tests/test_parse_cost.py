"""Parsing the Snakefile stays cheap: every cluster job re-parses it before it runs.

A job that starts by importing torch or matplotlib only to build the DAG pays seconds per job
and, on a login node, gigabytes of page cache. So the parse imports only the library's
top-level, parse-time modules (grid, registry, seeding, ...), never a stage subpackage, and
none of the heavy packages. ``python -X importtime`` lists every module a dry run imports.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "diffusers", "transformers", "matplotlib", "seaborn", "timm", "torchvision"}
SUBPACKAGES = sorted(
    p.name
    for p in (ROOT / "workflow" / "lib" / "synth2real").iterdir()
    if (p / "__init__.py").exists()
)


def imported_modules(configfile, workdir):
    """Every module a dry run of ``configfile`` imports, by dotted name."""
    (workdir / "config").symlink_to(ROOT / "config")  # relative inputs (classes.tsv) resolve
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--cores", "1",
         "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(ROOT / configfile)],  # fmt: skip
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", proc.stderr, flags=re.M)
    assert len(names) > 100, "importtime output not understood"
    return set(names)


@pytest.mark.parametrize("configfile", ["config/demo.yaml", "config/config.yaml"])
def test_parsing_imports_no_heavy_package_and_no_stage_module(configfile, tmp_path):
    mods = imported_modules(configfile, tmp_path)
    assert "synth2real.grid" in mods, "the probe must see the workflow's own imports"
    heavy = {m for m in mods if m.split(".")[0] in HEAVY}
    assert not heavy, f"parsing imports heavy modules: {sorted(heavy)[:10]}"
    stage = {m for m in mods if m.split(".")[:2][-1] in SUBPACKAGES and m.startswith("synth2real.")}
    assert not stage, f"parsing imports stage modules (jobs-only code): {sorted(stage)}"


def test_subpackages_mirror_the_rule_files():
    """A reader who knows the stage knows the folder: every stage subpackage of the library
    has a rule file of the same name (figures/ holds the figures.smk code)."""
    rules = {p.stem for p in (ROOT / "workflow" / "rules").glob("*.smk")}
    assert SUBPACKAGES, "no stage subpackages found"
    assert set(SUBPACKAGES) <= rules, set(SUBPACKAGES) - rules
    lib = ROOT / "workflow" / "lib" / "synth2real"
    for init in lib.rglob("__init__.py"):
        code = [ln for ln in init.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        if init.parent == lib:
            continue  # the package root: docstring, version, one lazy attribute
        assert not code, f"{init} must stay empty: importing a stage must not import its modules"
    flat = {p.stem for p in lib.glob("*.py")}
    assert not {f for f in flat if f.startswith(("captions_", "t2i"))} | ({"paper_figures"} & flat)
