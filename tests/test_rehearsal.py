"""The rehearsal's pieces (``make rehearsal`` itself runs in CI): its config has the paper
config's structure, its fixture tree is what the ImageNet reader accepts, and the rule-set
check reads dry runs and fails on a missing rule."""

from pathlib import Path

import pytest
import yaml
from make_imagenet_fixture import build
from rehearsal_rules import job_rules, main
from t2i_tiny import BUILDERS

from synth2real.data import imagenet
from synth2real.grid import Grid, read_classes

ROOT = Path(__file__).resolve().parents[1]
REHEARSAL = ROOT / "tests" / "config" / "rehearsal.yaml"


def load(path):
    return yaml.safe_load(Path(path).read_text())


def test_rehearsal_has_the_paper_configs_structure():
    paper, toy = load(ROOT / "config" / "config.yaml"), load(REHEARSAL)
    assert set(toy) >= set(paper)  # every section set, none left to inheritance
    for section in ("probes", "architectures", "prompt_types"):
        assert list(toy[section]) == list(paper[section]), section
    for probe, spec in paper["probes"].items():
        assert toy["probes"][probe]["archs"] == spec["archs"], probe
    assert toy["data"]["classes"] == paper["data"]["classes"]
    for key in ("feature_extractor", "distance"):
        assert toy["metrics"][key] == paper["metrics"][key]
    assert toy["captions"]["mode"] == "batch" and toy["captions"]["held_out"]
    assert toy["scaling"]["ipc"] and toy["scaling"]["cpc"] and toy["scaling"]["generators"]
    grid = Grid(toy, ROOT)
    assert grid.num_classes == 200
    pipelines = {grid.registry[g]["pipeline"] for g in grid.generators}
    assert pipelines <= set(BUILDERS)
    assert {"StableDiffusionPipeline", "StableDiffusionXLPipeline", "FluxPipeline",
            "QwenImagePipeline"} <= pipelines  # fmt: skip


def test_fixture_tree_is_read_as_imagenet(tmp_path):
    classes = tmp_path / "classes.tsv"
    rows = (ROOT / "config" / "classes.tsv").read_text().splitlines()[:4]
    classes.write_text("\n".join(rows) + "\n")
    root = tmp_path / "ILSVRC2012"
    assert build(root, classes, train=4, val=1, seed=0) == 15
    first = {p.name: p.read_bytes() for p in root.rglob("*.JPEG")}
    assert build(root, classes, train=4, val=1, seed=0) == 0  # complete: left as it is
    wnids = [r["wnid"] for r in read_classes(classes)]
    sel = imagenet.select_rows(root, wnids, {"train": 3, "val": 1, "test": 1}, seed=0)
    assert [len(sel[s]) for s in ("train", "val", "test")] == [9, 3, 3]
    assert [r.wnid for r in sel["test"]] == wnids
    again = tmp_path / "again"
    build(again, classes, train=4, val=1, seed=0)
    assert {p.name: p.read_bytes() for p in again.rglob("*.JPEG")} == first


DRY_RUN = """Building DAG of jobs...
Job stats:
job             count
------------  -------
{rows}
total               9
"""


@pytest.mark.parametrize("missing", [[], ["depth_probe"]])
def test_rule_sets_compared(tmp_path, missing):
    paper = tmp_path / "paper.txt"
    paper.write_text(DRY_RUN.format(rows="generate        5\ndepth_probe     3\nall             1"))
    toy = tmp_path / "toy.txt"
    toy.write_text(DRY_RUN.format(rows="\n".join(
        f"{r}    2" for r in ("generate", "depth_probe", "all") if r not in missing
    )))  # fmt: skip
    assert job_rules(paper.read_text()) == {"generate", "depth_probe", "all"}
    assert main([str(paper), str(toy)]) == (1 if missing else 0)
