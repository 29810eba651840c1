"""Bad outside inputs (ImageNet folder, OpenAI key) stop a run before any job, saying what to do.

The checks run while Snakemake builds the DAG, for rules with an output still to make: a run
that executes jobs fails there (no job starts), a dry run prints the same message as a
warning, so the paper grid can still be planned before its inputs exist.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synth2real import input_checks
from synth2real.input_checks import check_imagenet, check_openai_key, needs_openai_key

ROOT = Path(__file__).resolve().parents[1]
WNIDS = ["n01641577", "n01443537", "n01629819"]
REAL_SHARD = "results/demo/data/real/train/shard-00000.parquet"
CAPTIONS = "results/demo/captions/captions.parquet"
STOPS = "(a run that executes jobs stops here, before any job)"


def ilsvrc(root, val="folders", train_wnids=WNIDS):
    """An ILSVRC-style tree of empty class folders: the checks test directories only."""
    for wnid in train_wnids:
        (root / "train" / wnid).mkdir(parents=True)
    (root / "val").mkdir(parents=True, exist_ok=True)
    if val == "folders":
        for wnid in WNIDS:
            (root / "val" / wnid).mkdir()
    elif val == "flat+gt":
        (root / "val" / "val_labels.txt").write_text(f"ILSVRC2012_val_00000001.JPEG {WNIDS[0]}\n")
    return root


LAYOUTS = {  # bad input -> (how to make it, what the message says)
    "missing root": (lambda r: None, "ILSVRC does not exist; set it to your ILSVRC2012 folder"),
    "missing class folder": (
        lambda r: ilsvrc(r, train_wnids=WNIDS[:1]),
        "n01443537 is missing: class n01443537 of data.classes has no train folder (2 of the 3 "
        "classes have none); fix the root or drop the class",
    ),
    "val folder missing": (
        lambda r: (ilsvrc(r), (r / "val" / WNIDS[2]).rmdir()),
        "val/n01629819 is missing: val/ is in class folders, so every class",
    ),
    "flat val, no ground truth": (
        lambda r: ilsvrc(r, val="flat"),
        "is flat but no ground-truth file was found",
    ),
}


@pytest.mark.parametrize("bad", LAYOUTS)
def test_bad_imagenet_layouts_are_named(bad, tmp_path):
    make, message = LAYOUTS[bad]
    make(tmp_path / "ILSVRC")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_imagenet(tmp_path / "ILSVRC", WNIDS)


@pytest.mark.parametrize("val", ["folders", "flat+gt"])
def test_good_imagenet_layouts_pass(val, tmp_path):
    check_imagenet(ilsvrc(tmp_path / "ILSVRC", val=val), WNIDS)
    with pytest.raises(ValueError, match="data.imagenet_root is not set"):
        check_imagenet(None, WNIDS)


def test_which_captions_servers_need_a_key(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert needs_openai_key(None)  # the client's default: the OpenAI API
    assert needs_openai_key("https://api.openai.com/v1")
    assert not needs_openai_key("http://127.0.0.1:8000/v1")  # a local vLLM, the test server
    assert not needs_openai_key("https://notopenai.com/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")  # the client reads it
    assert not needs_openai_key(None)
    check_openai_key(None)
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ValueError, match="OPENAI_API_KEY is not set, and the captions server "
                       "https://api.openai.com/v1 needs one: export OPENAI_API_KEY="):  # fmt: skip
        check_openai_key(None)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    check_openai_key(None)


def test_the_captioner_asks_a_keyless_server_without_a_key(monkeypatch):
    from synth2real.captions.core import CaptionError, CaptionSettings
    from synth2real.captions.runner import make_client

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = make_client(CaptionSettings(base_url="http://127.0.0.1:9/v1"))
    assert client.api_key == input_checks.NO_KEY
    with pytest.raises(CaptionError, match="OPENAI_API_KEY is not set"):
        make_client(CaptionSettings())


# --- the same checks in the workflow: a dry run warns, a run stops before any job
def workflow_config(tmp_path, root, **captions):
    """The demo on an ImageNet-style tree with both prompt types (so captions are made)."""
    config = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    classes = tmp_path / "classes.tsv"
    classes.write_text("wnid\tname\n" + "".join(f"{w}\tclass{i}\n" for i, w in enumerate(WNIDS)))
    config["data"].update(source="imagenet", imagenet_root=str(root), classes=str(classes))
    config["prompt_types"] = ["classname", "caption"]
    if captions:
        config["captions"] = captions
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(tmp_path, config, *args, key=None):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    if key:
        env["OPENAI_API_KEY"] = key
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(workdir), "--configfile", str(config), "--cores", "1", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    return proc, proc.stdout + proc.stderr


def assert_stops_before_any_job(tmp_path, config, target, message, key=None):
    """A dry run names the problem and plans on; a real run fails with it, starting nothing."""
    proc, out = snakemake(tmp_path, config, "-n", target, key=key)
    assert proc.returncode == 0, out[-3000:]
    assert message in out and STOPS in out, out[-3000:]
    proc, out = snakemake(tmp_path, config, target, key=key)
    assert proc.returncode != 0
    assert message in out, out[-3000:]
    assert "rule real_data:" not in out and "localrule captions:" not in out, out[-3000:]
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.parametrize("bad", LAYOUTS)
def test_bad_imagenet_stops_the_run_before_any_job(bad, tmp_path):
    make, message = LAYOUTS[bad]
    make(tmp_path / "ILSVRC")
    config = workflow_config(tmp_path, tmp_path / "ILSVRC")
    assert_stops_before_any_job(tmp_path, config, REAL_SHARD, message, key="sk-test")


def test_captions_without_a_key_stop_the_run_before_any_job(tmp_path):
    config = workflow_config(tmp_path, ilsvrc(tmp_path / "ILSVRC"))
    message = "OPENAI_API_KEY is not set, and the captions server https://api.openai.com/v1"
    assert_stops_before_any_job(tmp_path, config, CAPTIONS, message)


def test_inputs_not_needed_are_not_checked(tmp_path):
    """No warning where nothing is wrong or nothing reads the input: a keyless local server,
    a made captions table, a made shard (moving ImageNet away from finished results)."""
    local = workflow_config(tmp_path, ilsvrc(tmp_path / "ILSVRC"), base_url="http://127.0.0.1:9/v1")
    proc, out = snakemake(tmp_path, local, "-n", CAPTIONS)
    assert proc.returncode == 0 and STOPS not in out, out[-3000:]
    gone = workflow_config(tmp_path, tmp_path / "moved")
    # captions.held_out (the default): three caption tables, from the train, val and test shards
    held_out = [CAPTIONS.replace(".parquet", f"-{s}.parquet") for s in ("val", "test")]
    held_out += [REAL_SHARD.replace("/train/", f"/{s}/") for s in ("val", "test")]
    for made, also in ((REAL_SHARD, []), (CAPTIONS, held_out)):
        for path in (made, *also):
            (tmp_path / "work" / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "work" / path).touch()
        proc, out = snakemake(tmp_path, gone, "-n", made)
        assert proc.returncode == 0 and STOPS not in out, out[-3000:]
