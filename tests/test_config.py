"""Config validation: bad keys and values stop the run before any job, naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synth2real.grid import ConfigError, Grid

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def dry_run(config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [*SNAKEMAKE, "-n", "--configfile", str(path), "--directory", str(tmp_path),
         "--snakefile", str(ROOT / "Snakefile")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_unknown_top_level_key_is_named(tmp_path):
    config = load("demo.yaml")
    config["epochz"] = 3
    proc = dry_run(config, tmp_path)
    assert proc.returncode != 0
    assert "epochz" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_bad_nested_value_is_named(tmp_path):
    config = load("demo.yaml")
    config["probes"]["lowpass"]["cutoff"] = 2.5
    proc = dry_run(config, tmp_path)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0
    assert "cutoff" in out and "2.5" in out


def grid_of(config):
    return Grid(config, root=ROOT)


def test_unknown_generator_is_named():
    config = load("demo.yaml")
    config["generators"] = ["ddpm-cfg1", "ddpm-cfg99"]
    with pytest.raises(ConfigError, match="ddpm-cfg99"):
        grid_of(config)


def test_unknown_arch_is_named():
    config = load("demo.yaml")
    config["probes"]["lowpass"]["archs"] = ["resnet5O"]
    with pytest.raises(ConfigError, match=r"probes\.lowpass\.archs.*resnet5O"):
        grid_of(config)


def test_demo_grid_shape():
    grid = grid_of(load("demo.yaml"))
    assert grid.num_classes == 10
    assert list(grid.synthetic) == [
        "ddpm-cfg1-classname", "ddpm-cfg3-classname", "ddpm-cfg7.5-classname"
    ]  # fmt: skip
    assert "depth" not in grid.probes  # wired, switched off
    evals = grid.evaluations()
    # every model is tested on real; real models also on each synthetic test split
    n_models = len(grid.models())
    assert len(evals) == n_models + 4 * len(grid.synthetic)


def test_paper_grid_shape():
    grid = grid_of(load("config.yaml"))
    assert grid.num_classes == 200
    assert len(grid.synthetic) == 28
    assert grid.n_shards("sd15-caption", "train") == 50
    assert grid.n_shards("real", "test") == 5


def test_omitted_sections_get_the_schema_defaults_code_reads():
    """Scripts index these keys directly (defaults live in the schema only), so a config that
    leaves a section out must still get every key filled in by validation."""
    from snakemake.utils import validate

    config = load("demo.yaml")
    del config["metrics"]["spectra"], config["figures"]["samples_per_class"]
    assert "prompts" not in config
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert config["metrics"]["spectra"] == {"n_bins": 64, "band": [0.05, 0.8], "max_images": 2000}
    assert config["prompts"] == {"template": "{class_name}"}
    assert config["figures"] == {  # the demo sets table_classes: 10
        "samples_per_class": 4,
        "table_classes": 10,
        "table_samples_per_class": 1,
    }
