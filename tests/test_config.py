"""Config validation: bad keys and values stop the run before any job, naming the key."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dag_stats import job_counts

from synth2real.grid import ConfigError, Grid
from synth2real.settings import (
    RUNTIME,
    ResultSettings,
    generator_settings,
    load_schema,
    marked_paths,
)

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def dry_run(config, tmp_path, *args):
    """A dry run of ``config`` in ``tmp_path``, which sees the repository's config/ as a run
    from the repository root does (the Snakefile's ``configfile:`` is relative to it)."""
    (tmp_path / "config").symlink_to(ROOT / "config")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return subprocess.run(
        [*SNAKEMAKE, "-n", "--configfile", str(path), "--directory", str(tmp_path),
         "--snakefile", str(ROOT / "Snakefile"), *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


def test_a_configfile_is_the_whole_config(tmp_path):
    """Nothing of config/config.yaml leaks into a --configfile run: a copy of the demo with
    only the rgb probe plans no depth or frequency probe job (merged over the paper config,
    it planned 12 depth_probe jobs)."""
    config = load("demo.yaml")
    config["probes"] = {"rgb": config["probes"]["rgb"]}
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert not {"depth_probe", "frequency_probe"} & set(counts), counts
    # real and 3 generators x 2 prompt types, rgb smallcnn only
    assert counts["train_classifier"] == 7


def test_without_a_configfile_the_paper_config_is_the_config(tmp_path):
    """No --configfile: config/config.yaml next to the Snakefile, from any directory."""
    target = "results/paper/data/real/train/shard-00000.parquet"
    proc = subprocess.run(
        [*SNAKEMAKE, "-n", target, "--directory", str(tmp_path),
         "--snakefile", str(ROOT / "Snakefile")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert job_counts(proc.stdout) == {"real_data": 1}


def test_config_overrides_apply_on_top_of_the_configfile(tmp_path):
    """--config key=value still works, and a nested value merges into its section (the
    section's required keys stay)."""
    config = load("demo.yaml")
    proc = dry_run(config, tmp_path, "--config", "run=other", "train={'optimizer': 'sgd'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/other/models/real/rgb/smallcnn/model.pt" in proc.stdout
    assert "results/demo/" not in proc.stdout


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
        f"ddpm-cfg{w}-{p}" for w in ("1", "1.5", "2.5") for p in ("classname", "caption")
    ]
    assert "depth" not in grid.probes  # wired, switched off
    evals = grid.evaluations()
    # every model is tested on real; real models also on each synthetic test split
    n_models = len(grid.models())
    assert len(evals) == n_models + 4 * len(grid.synthetic)


def test_demo_measures_density_with_the_papers_distance():
    """The demo differs from the paper config in its feature space (a real-trained classifier,
    not CLIP) and its reference split, both written down; its PRDC distance is the paper's, so
    density and coverage are computed as the paper computed them (docs/fidelity.md, row 2)."""
    demo, paper = load("demo.yaml")["metrics"], load("config.yaml")["metrics"]
    assert demo["distance"] == paper["distance"] == "cosine"
    assert demo["nearest_k"] == paper["nearest_k"] == 5


def test_paper_grid_shape():
    grid = grid_of(load("config.yaml"))
    assert grid.num_classes == 200
    assert len(grid.synthetic) == 28
    assert grid.n_shards("sd15-caption", "train") == 50
    assert grid.n_shards("real", "test") == 5


def test_caption_sources_and_the_splits_the_captions_job_reads():
    config = load("config.yaml")
    assert config["captions"]["held_out"] is True  # on in the paper config
    grid = grid_of(config)
    assert grid.captioned_splits() == ("train", "val", "test")
    assert [grid.caption_source(s) for s in ("train", "val", "test")] == ["train", "val", "test"]
    config["captions"]["held_out"] = False  # the official code's setting
    grid = grid_of(config)
    assert grid.captioned_splits() == ("train",)
    assert [grid.caption_source(s) for s in ("train", "val", "test")] == ["train"] * 3
    classname_only = {**load("demo.yaml"), "prompt_types": ["classname"]}
    assert grid_of(classname_only).captioned_splits() == ()  # no caption prompts


def test_held_out_splits_must_fit_their_real_split():
    config = load("config.yaml")
    config["synthetic"]["splits"]["test"] = 60  # 50 real test images per class
    with pytest.raises(ConfigError, match=r"synthetic\.splits\.test: 60.*data\.splits\.test \(50"):
        grid_of(config).captioned_splits()
    config["captions"]["held_out"] = False  # test prompts from the 500 train captions
    assert grid_of(config).captioned_splits() == ("train",)
    del config["captions"]
    with pytest.raises(ConfigError, match="captions section"):
        grid_of(config).captioned_splits()


def job_blocks(dry_run_output):
    """The jobs of a dry run's output: (rule, {field: value}) per job."""
    jobs = []
    for block in re.split(r"\n(?=rule \S+:\n)", dry_run_output):
        head = re.match(r"rule (\S+):\n", block)
        if head:
            fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
            jobs.append((head.group(1), fields))
    return jobs


@pytest.mark.parametrize("held_out", [True, False])
def test_dry_run_wires_captions_and_prompts_to_the_captioned_splits(held_out, tmp_path):
    """The DAG itself: the captions job (for the digits, rule digits_captions) reads the real
    shards of every captioned split and writes one table each; a caption dataset's val/test
    prompts read their source's table."""
    config = load("demo.yaml")
    config["prompt_types"] = ["classname", "caption"]
    config["data"]["classes"] = None
    config["captions"] = {"held_out": held_out}
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_blocks(proc.stdout)
    [captions] = [fields for rule, fields in jobs if rule == "digits_captions"]
    splits = ["train", "val", "test"] if held_out else ["train"]
    assert captions["input"].split(", ") == [
        f"results/demo/data/real/{s}/shard-00000.parquet" for s in splits
    ]
    tables = {s: "captions.parquet" if s == "train" else f"captions-{s}.parquet" for s in splits}
    assert sorted(captions["output"].split(", ")) == sorted(
        [f"results/demo/captions/{t}" for t in tables.values()]
    )  # no failures report: nothing is requested, nothing can fail
    prompts = {
        fields["wildcards"]: fields.get("input")
        for rule, fields in jobs
        if rule == "prompts" and fields["wildcards"].startswith("synth=ddpm-cfg1-")
    }
    for split in ("train", "val", "test"):
        table = tables[split if held_out else "train"]
        assert (
            prompts[f"synth=ddpm-cfg1-caption, split={split}"] == f"results/demo/captions/{table}"
        )
        assert prompts[f"synth=ddpm-cfg1-classname, split={split}"] is None


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


# --- the rerun contract: runtime knobs are marked in the schema and never reach job params
RUNTIME_KEYS = {
    ("device",), ("threads",), ("data", "imagenet_root"), ("synthetic", "batch_size"),
    ("probes", "*", "batch_size"), ("train", "loader_workers"), ("train", "decoded_cache"),
    ("train", "compile"), ("captions", "mode"), ("captions", "concurrency"),
    ("captions", "timeout_s"), ("captions", "max_retries"), ("captions", "refusal_retries"),
    ("captions", "backoff_base_s"), ("captions", "backoff_max_s"),
    ("captions", "batch_max_requests"), ("captions", "batch_max_bytes"),
    ("captions", "batch_max_open"), ("captions", "batch_poll_s"),
    ("captions", "batch_max_wait_s"), ("captions", "max_failure_fraction"),
    ("captions", "output_tokens_mean"), ("captions", "prices"),
}  # fmt: skip


def config_schema():
    return load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def test_runtime_keys_are_the_declared_ones():
    assert set(marked_paths(config_schema(), RUNTIME)) == RUNTIME_KEYS


def test_result_settings_drop_runtime_keys_at_any_depth():
    config = load("config.yaml")  # the paper config sets every kind of runtime knob
    settings = ResultSettings(config, config_schema())
    data = settings("data")
    assert "imagenet_root" not in data and data["classes"] == "config/classes.tsv"
    assert list(data) == [k for k in config["data"] if k != "imagenet_root"]  # order kept
    train = settings("train")
    assert {"loader_workers", "decoded_cache", "compile"}.isdisjoint(train)
    assert train["epochs"] == 80 and train["loader"] == "auto"  # loader can pick the path
    captions = settings("captions")
    assert captions["model"] == "gpt-4.1-nano" and captions["image_size"] == 256
    assert {"mode", "concurrency", "timeout_s", "max_retries", "prices"}.isdisjoint(captions)
    assert "batch_size" not in settings("probes", "depth")
    assert settings("probes", "depth")["model"].startswith("depth-anything/")
    assert settings("synthetic") == {k: v for k, v in config["synthetic"].items()
                                     if k != "batch_size"}  # fmt: skip
    assert settings("prompts", "missing", default={}) == {}
    with pytest.raises(KeyError, match="runtime"):
        settings("device")


def test_generator_settings_drop_figure_metadata():
    registry_schema = load_schema(ROOT / "workflow" / "schemas" / "generators.schema.yaml")
    spec = grid_of(load("config.yaml")).registry["sd15"]
    kept = generator_settings(spec, registry_schema)
    assert {"display_name", "release_date", "geneval", "gated"}.isdisjoint(kept)
    assert kept["steps"] == spec["steps"] and kept["repo_id"] == spec["repo_id"]


def test_real_and_synthetic_stored_sizes_must_agree():
    config = load("demo.yaml")
    config["data"]["image_size"] = 24
    with pytest.raises(ConfigError, match=r"image_size is 24 .* ddpm-cfg1 at 16"):
        grid_of(config)


@pytest.mark.parametrize("reference", ["train", "test"])
def test_density_coverage_reference_is_the_configured_real_split(reference, tmp_path):
    """metrics.reference picks the real features every distribution job compares against:
    real train's (the paper) or those of a split the generator never saw (the demo: test)."""
    config = load("demo.yaml")
    config["metrics"]["reference"] = reference
    proc = dry_run(config, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_blocks(proc.stdout)
    real = "real.npz" if reference == "train" else "real.test.npz"
    inputs = [fields["input"] for rule, fields in jobs if rule == "distribution"]
    assert len(inputs) == 6 and all(f"results/demo/features/{real}" in i for i in inputs)
    extracted = [fields["output"] for rule, fields in jobs if rule.startswith("extract_")]
    assert f"results/demo/features/{real}" in extracted
    assert ("results/demo/features/real.test.npz" in extracted) == (reference == "test")
