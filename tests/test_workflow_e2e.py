"""The whole DAG on a reduced demo config: real data to report, then resume behaviour."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dag_stats import job_counts

from synth2real import catalog
from synth2real.grid import Grid

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "config" / "e2e.yaml"
PROBES = {"rgb", "texture", "lowpass", "highpass"}
SYNTH = ["ddpm-cfg1-classname", "ddpm-cfg7.5-classname"]

pytestmark = pytest.mark.slow


def snakemake(workdir, *args, check=True, config=CONFIG):
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1500)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


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


def e2e_grid():
    """The grid Snakemake runs here: e2e.yaml (the whole config) with schema defaults."""
    from snakemake.utils import validate

    cfg = yaml.safe_load(CONFIG.read_text())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return Grid(cfg, root=ROOT)


FIGURES = [f.name for f in catalog.run_figures()]
PAGE_FIGURES = [f.name for f in catalog.page_figures()]
# What the e2e grid can fill: these are in the report (the others are drawn empty).
FILLED = catalog.filled(e2e_grid())


def test_catalog_predicts_what_the_e2e_grid_fills():
    # no GenEval scores in the demo registry and no caption prompts: those two stay empty
    assert FILLED == ["release", "accuracy", "ipc", "probes", "probe_gaps", "probe_views",
                      "frequency_bands", "density_coverage", "transfer", "spectra"]  # fmt: skip
    # and no Table 3: the e2e grid has no captions, so its rule is no target of `all`
    assert catalog.filled(e2e_grid(), list(catalog.TABLES)) == []


GENERATORS = {"ddpm-cfg1": "ddpm-cfg1-classname", "ddpm-cfg7.5": "ddpm-cfg7.5-classname"}
IPC = [10, 30]  # 30 = the whole train split: the main model's own point


def summary_top1(run_dir):
    summary = pd.read_csv(run_dir / "results" / "e2e" / "summary.csv")
    return summary.set_index(["train_dataset", "probe", "arch", "test_dataset"]).top1


def test_figures_and_sidecars(run_dir):
    figs = run_dir / "results" / "e2e" / "figures"
    for name in FIGURES:
        for ext in ("png", "pdf", "csv"):
            assert (figs / f"{name}.{ext}").stat().st_size > 0
    top1 = summary_top1(run_dir)
    acc = pd.read_csv(figs / "accuracy.csv")
    assert sorted(acc.train_dataset) == sorted(SYNTH)
    for r in acc.itertuples():
        assert r.top1 == pytest.approx(top1[(r.train_dataset, "rgb", "smallcnn", "real")])
    release = pd.read_csv(figs / "release.csv")
    assert sorted(release.train_dataset) == sorted(SYNTH)
    for r in release.itertuples():
        assert r.top1 == pytest.approx(top1[(r.train_dataset, "rgb", "smallcnn", "real")])
        assert r.real_baseline == pytest.approx(top1[("real", "rgb", "smallcnn", "real")])
    probes = pd.read_csv(figs / "probes.csv")
    assert len(probes) == len(SYNTH) * 3  # texture, lowpass, highpass per synthetic dataset
    for r in probes.itertuples():
        assert r.probe_top1 == pytest.approx(top1[(r.train_dataset, r.probe, r.arch, "real")])
    assert len(pd.read_csv(figs / "frequency_bands.csv")) == len(SYNTH) * 2
    gaps = pd.read_csv(figs / "probe_gaps.csv")
    assert len(gaps) == len(SYNTH) * 4  # rgb too: the gap the probes' gaps compare with
    for r in gaps.itertuples():
        real = top1[("real", r.probe, r.arch, "real")]
        synth = top1[(r.train_dataset, r.probe, r.arch, "real")]
        assert r.relative_top1 == pytest.approx(synth / real)
    assert len(pd.read_csv(figs / "density_coverage.csv")) == len(SYNTH)
    transfer = pd.read_csv(figs / "transfer.csv")
    for r in transfer.itertuples():
        assert r.real_to_synth == pytest.approx(top1[("real", "rgb", "smallcnn", r.dataset)])
    # the demo registry has no GenEval scores and the grid no caption prompts: drawn empty
    assert len(pd.read_csv(figs / "geneval.csv")) == 0
    assert len(pd.read_csv(figs / "geneval_wu.csv")) == 0
    assert len(pd.read_csv(figs / "clipscore.csv")) == 0
    ipc = pd.read_csv(figs / "ipc.csv")
    assert len(ipc) == (1 + len(SYNTH)) * len(IPC)
    assert sorted(set(ipc.ipc)) == IPC
    for r in ipc[ipc.ipc == 30].itertuples():  # the full split is the main model's point
        assert r.top1 == pytest.approx(top1[(r.dataset, "rgb", "smallcnn", "real")])
    for synth in SYNTH:
        assert (figs / "samples" / f"{synth}.png").stat().st_size > 0
    views = pd.read_csv(figs / "probe_views.csv")  # Fig. 2: real and the first dataset
    assert list(dict.fromkeys(views.dataset)) == ["real", "ddpm-cfg1-classname"]
    assert list(dict.fromkeys(views.probe)) == ["rgb", "texture", "lowpass", "highpass"]
    # real shows its first row; a class-name dataset (no caption to match) the first row of
    # that image's class, read back from its train shard
    real_view, synth_view = (views[views.dataset == d] for d in ("real", "ddpm-cfg1-classname"))
    assert set(real_view.row) == {0} and set(synth_view.label) == set(real_view.label)
    synth_labels = pd.read_parquet(
        run_dir
        / "results"
        / "e2e"
        / "data"
        / "ddpm-cfg1-classname"
        / "train"
        / "shard-00000.parquet",
        columns=["label"],
    ).label
    first_of_class = int((synth_labels == real_view.label.iloc[0]).idxmax())
    assert set(synth_view.row) == {first_of_class}
    assert set(views[views.probe == "texture"].shown) == {"9x9 patches"}
    assert not (run_dir / "results" / "e2e" / "tables" / "caption_samples.md").exists()
    table1 = pd.read_csv(figs / "samples_table" / "classname.csv")
    assert len(table1) == (1 + len(SYNTH)) * 4  # real + each generator, 4 classes
    assert (figs / "spectra.png").stat().st_size > 0
    slopes = pd.read_csv(run_dir / "results" / "e2e" / "tables" / "spectra.csv")
    assert sorted(slopes.dataset) == sorted(["real", *SYNTH])
    assert slopes.set_index("dataset").alpha["real"] > 0.5  # digits have a steep spectrum
    md = (run_dir / "results" / "e2e" / "tables" / "results.md").read_text()
    for v in top1[top1.index.get_level_values("test_dataset") == "real"]:
        assert f"{v:.4f}" in md


def test_generator_pages(run_dir):
    # A page draws the other generators from whatever of their results exist when it runs,
    # and the order of parallel jobs varies: refresh the pages, as the README says, so that
    # the grey context is complete whichever generator finished first.
    snakemake(run_dir, "all", "--forcerun", "generator_page")
    top1 = summary_top1(run_dir)
    for gen, synth in GENERATORS.items():
        page = run_dir / "results" / "e2e" / "generators" / gen
        for name in PAGE_FIGURES:
            for ext in ("png", "pdf", "csv"):
                assert (page / "figures" / f"{name}.{ext}").stat().st_size > 0, (gen, name)
        release = pd.read_csv(page / "figures" / "release.csv")
        assert len(release) == len(SYNTH)  # the other generator drawn as grey context
        lit = release[release.highlight]
        assert list(lit.generator) == [gen]
        assert lit.top1.iloc[0] == pytest.approx(top1[(synth, "rgb", "smallcnn", "real")])
        ipc = pd.read_csv(page / "figures" / "ipc.csv")
        assert set(ipc[ipc.highlight].generator) == {gen, "real"}
        rows = pd.read_csv(page / "results.csv")
        assert set(rows.train_dataset) == {"real", synth}
        assert set(rows.generator) <= {gen, "real"}
        assert "![release](figures/release.png)" in (page / "page.md").read_text()


def test_report_contains_every_figure(run_dir):
    report = run_dir / "results" / "e2e" / "report.html"
    snakemake(run_dir, "all", "--report", str(report))
    html = report.read_text(errors="replace")
    names = [f"figures/{n}.png" for n in FILLED] + ["summary.csv"]
    names += ["figures/samples_table/classname.png", "tables/results.md", "report/versions.csv"]
    names += ["report/config.yaml"]
    for gen in GENERATORS:
        names += [f"generators/{gen}/figures/{n}.png" for n in FILLED if n in PAGE_FIGURES]
        names += [f"figures/samples_prompts/{gen}.png", f"generators/{gen}/results.csv"]
    for name in names:
        assert name in html, name
    for group in ("Prompt following", "Structure and texture", "Frequency", "Diversity",
                  "Transfer asymmetry", "Generator ddpm-cfg1", "Run"):  # fmt: skip
        assert group in html, group


def test_unrelated_config_edits_rerun_only_the_jobs_that_read_them(run_dir, tmp_path):
    """Params are a rerun trigger, so a job must not receive settings it doesn't read: a new
    figure option or k for density/coverage must not regenerate shards or retrain models."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["figures"]["samples_per_class"] = cfg["figures"].get("samples_per_class", 4) + 1
    cfg["metrics"]["nearest_k"] = cfg["metrics"].get("nearest_k", 5) + 1
    edited = tmp_path / "edited.yaml"
    # keep the key order: Snakemake compares params as written, so a reordered dict is a change
    edited.write_text(yaml.safe_dump(cfg, sort_keys=False))
    counts = job_counts(snakemake(run_dir, "all", "-n", config=edited).stdout)
    assert counts.get("sample_grid") == len(SYNTH)
    assert counts.get("distribution") == len(SYNTH)
    expensive = {"real_data", "train_generator", "prompts", "generate", "frequency_probe",
                 "train_classifier", "train_ipc", "evaluate", "evaluate_real_model",
                 "extract_features"}  # fmt: skip
    assert not expensive & set(counts), counts


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


# --- the rerun contract: a job's params are exactly the settings that can change its output
def edited_config(tmp_path, name, edit):
    """The e2e config after ``edit(cfg)``, the whole config of a dry run. Key order is kept:
    Snakemake compares params as written, so a reordered dict would be a change."""
    cfg = yaml.safe_load(CONFIG.read_text())
    edit(cfg)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def section(cfg, *keys):
    for key in keys:
        cfg = cfg.setdefault(key, {})
    return cfg


# Every runtime knob (x-runtime in the schema), set in the e2e config or added by the edit: a
# new value reruns run_info (it records the config) and nothing else.
RUNTIME_EDITS = {
    "train.loader_workers": lambda c: section(c, "train").update(loader_workers=1),
    "train.decoded_cache": lambda c: section(c, "train").update(decoded_cache="/scratch/x"),
    "train.compile": lambda c: section(c, "train").update(compile=True),
    "threads.default": lambda c: section(c, "threads").update(default=2),
    "threads.generate": lambda c: section(c, "threads").update(generate=2),
    "device": lambda c: c.update(device="auto"),  # still the CPU here
    "synthetic.batch_size": lambda c: section(c, "synthetic").update(batch_size=250),
    "data.imagenet_root": lambda c: section(c, "data").update(imagenet_root="/scratch/else"),
    "probes.depth.batch_size": lambda c: section(c, "probes", "depth").update(batch_size=8),
    "captions.concurrency": lambda c: section(c, "captions").update(concurrency=4),
    "captions.timeout_s": lambda c: section(c, "captions").update(timeout_s=30),
    "captions.max_retries": lambda c: section(c, "captions").update(max_retries=1),
    "captions.mode": lambda c: section(c, "captions").update(mode="online"),
    "captions.prices": lambda c: section(c, "captions", "prices").update(as_of="2030-01-01"),
}


def test_runtime_knobs_rerun_nothing_but_run_info(run_dir, tmp_path):
    rerun = {}
    for name, edit in RUNTIME_EDITS.items():
        counts = job_counts(
            snakemake(run_dir, "all", "-n", config=edited_config(tmp_path, name, edit)).stdout
        )
        assert counts.get("run_info") == 1, (name, counts)  # the recorded config did change
        if set(counts) - {"run_info", "all"}:
            rerun[name] = counts
    assert not rerun, rerun


def rule_graph(workdir):
    """The e2e DAG's rules as {rule: rules that read its output}, from ``--rulegraph``."""
    dot = snakemake(workdir, "all", "--rulegraph").stdout
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", dot, flags=re.M))
    children = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M):
        children[names[src]].add(names[dst])
    return children


def downstream(children, rule):
    out, todo = set(), [rule]
    while todo:
        for child in children[todo.pop()] - out:
            out.add(child)
            todo.append(child)
    return out


def registry_edit(tmp_path, generator, **changes):
    """A copy of the demo registry with one entry changed, as the config's generators_file."""
    registry = yaml.safe_load((ROOT / "config" / "demo_generators.yaml").read_text())
    registry["generators"][generator].update(changes)
    path = tmp_path / f"generators-{generator}-{'-'.join(changes)}.yaml"
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    return lambda c: c.update(generators_file=str(path))


# One result setting per stage -> the rules that read it, which must rerun. Everything that
# reruns must be one of them or downstream of one; nothing upstream may.
RESULT_EDITS = {
    "data": (["real_data"], lambda c: section(c, "data", "splits").update(val=11)),
    "prompts": (["prompts"], lambda c: section(c, "prompts").update(template="a {class_name}")),
    "digits_ddpm": (["train_generator"], lambda c: section(c, "digits_ddpm").update(steps=61)),
    "probes": (["frequency_probe"], lambda c: section(c, "probes", "lowpass").update(cutoff=0.3)),
    "train": (  # the main grid's models and Fig. 7's IPC models share the recipe
        ["train_classifier", "train_ipc"],
        lambda c: section(c, "train").update(epochs=5),
    ),
    "metrics": (["distribution"], lambda c: section(c, "metrics").update(nearest_k=4)),
    "spectra": (["spectrum"], lambda c: section(c, "metrics", "spectra").update(n_bins=6)),
    "figures": (["sample_grid"], lambda c: section(c, "figures").update(samples_per_class=3)),
    "tables": (  # paper Tables 1 and 2, and the sample grids: the classes they draw
        ["samples_table", "samples_prompts", "sample_grid"],
        lambda c: section(c, "figures").update(table_classes=3),
    ),
}


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    return rule_graph(tmp_path_factory.mktemp("rulegraph"))


def assert_reruns_from(counts, rules, children):
    allowed = {*rules, "run_info", "all"}.union(*(downstream(children, r) for r in rules))
    assert all(counts.get(r) for r in rules), (rules, counts)
    assert set(counts) <= allowed, (rules, sorted(set(counts) - allowed))


def test_result_settings_rerun_their_stage_and_downstream_only(run_dir, children, tmp_path):
    for name, (rules, edit) in RESULT_EDITS.items():
        counts = job_counts(
            snakemake(run_dir, "all", "-n", config=edited_config(tmp_path, name, edit)).stdout
        )
        assert_reruns_from(counts, rules, children)
    # a generation setting of one generator: its shards and what reads them, nothing upstream
    edit = registry_edit(tmp_path, "ddpm-cfg7.5", steps=21)
    counts = job_counts(
        snakemake(run_dir, "all", "-n", config=edited_config(tmp_path, "steps", edit)).stdout
    )
    assert_reruns_from(counts, ["generate"], children)
    assert counts["generate"] == 2 + 1 + 1  # 150-row shards of 300 train, 100 val, 150 test
    assert counts["train_classifier"] == len(PROBES)  # that dataset's models only


def test_generator_metadata_reruns_only_figures(run_dir, tmp_path):
    """A display name (x-metadata) is read by figures and pages, never by generation."""
    edit = registry_edit(tmp_path, "ddpm-cfg7.5", display_name="renamed")
    counts = job_counts(
        snakemake(run_dir, "all", "-n", config=edited_config(tmp_path, "name", edit)).stdout
    )
    figure_rules = {"figures", "results_markdown", "generator_page", "samples_table",
                    "samples_prompts", "probe_views", "run_info", "all"}  # fmt: skip
    assert counts.get("figures") == 1, counts
    assert set(counts) <= figure_rules, counts
