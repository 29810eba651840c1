"""Weights through a local hub: the real huggingface_hub client against tests/hub_server.py.

Nothing of huggingface_hub is mocked: ``snapshot_download`` talks HTTP to a server on
127.0.0.1 that serves tiny random-weight repos of every class the grid loads (each diffusers
family, CLIP, Depth Anything), with LFS redirects to a CDN on another port, a gated repo and
the hub's error codes. The Snakemake tests run ``snakemake weights`` with ``HF_ENDPOINT`` at
that hub, then compute jobs with ``HF_ENDPOINT`` at a closed port, and check that bad input
(weights not fetched, a gated repo without ``HF_TOKEN``) stops the run before any job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import hub_server
import numpy as np
import pytest
import yaml
from hub_server import OTHER_TOKEN, TEST_TOKEN
from t2i_tiny import TINY_SPECS

from synth2real.generate.pipelines import WeightsDownloadError, download_weights, load_pipeline
from synth2real.paths import RunPaths
from synth2real.registry import download_patterns
from synth2real.weights import TRANSFORMERS_DOWNLOAD

ROOT = Path(__file__).resolve().parents[1]
tiny_hub = hub_server.tiny_hub  # the session fixture: a served hub of tiny repos
SD = "StableDiffusionPipeline"


def downloaded(folder: Path) -> set[str]:
    """Repo files in a download folder (not huggingface_hub's own .cache metadata)."""
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def assert_same_bytes(hub, repo_id: str, folder: Path, files: set[str]) -> None:
    repo = hub.hub.repos[repo_id]
    for f in files:
        assert (folder / f).read_bytes() == (repo.folder / f).read_bytes(), f


@pytest.fixture(autouse=True)
def no_ambient_token(monkeypatch, tmp_path):
    """No token from the shell or a token file: each test says which token it sends."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


# ------------------------------------------------------------------------ parse time
def validated(path: Path, **changes) -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load(path.read_text())
    config.update(changes)
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def test_the_grid_lists_every_hub_model_it_loads():
    from synth2real import weights as hub
    from synth2real.grid import Grid

    paper = hub.grid_weights(Grid(validated(ROOT / "config" / "config.yaml"), ROOT))
    clip, depth = "openai--clip-vit-large-patch14", "depth-anything--Depth-Anything-V2-Large-hf"
    assert list(paper)[-2:] == [clip, depth] and len(paper) == 16
    assert (paper[clip].loads, paper[depth].loads) == (hub.CLIP, hub.DEPTH)
    assert {w.id for w in paper.values() if w.gated} == {
        "sd30", "flux-dev", "sd35", "sd35-large", "sd35-turbo",
    }  # fmt: skip
    assert paper["sdxl"].download_spec() == {
        "repo_id": "stabilityai/stable-diffusion-xl-base-1.0", "variant": "fp16",
    }  # fmt: skip
    assert paper[clip].download_spec()["download"] == hub.TRANSFORMERS_DOWNLOAD
    assert paper[clip].flag == f"resources/weights/{clip}/.complete"
    # The demo trains its own generator, uses classifier features and scores its captions with
    # the attribute stand-in: nothing to download.
    demo = validated(ROOT / "config" / "demo.yaml")
    assert "caption" in demo["prompt_types"] and hub.grid_weights(Grid(demo, ROOT)) == {}
    # CLIPScore alone (caption prompts, classifier features) still needs CLIP.
    clipscore = {**demo, "metrics": {**demo["metrics"], "caption_score": "clipscore"}}
    assert hub.needs_clip(Grid(clipscore, ROOT))


def test_missing_and_gated_checks_read_flags_and_the_environment_only(tmp_path):
    from synth2real import weights as hub

    a = hub.HubWeights("a", "org/a", SD, gated=True)
    b = hub.HubWeights("b", "org/b", hub.CLIP)
    (tmp_path / "resources" / "weights" / "b").mkdir(parents=True)
    (tmp_path / "resources" / "weights" / "b" / ".complete").write_text("{}")
    assert hub.missing([a, b], tmp_path) == [a]
    assert hub.gated_without_token([a, b], {}) == [a]
    assert hub.gated_without_token([a, b], {"HF_TOKEN": ""}) == [a]
    assert hub.gated_without_token([a, b], {"HF_TOKEN": "x"}) == []
    msg = hub.missing_weights_message([a, b], ["my.yaml"])
    assert "snakemake weights --cores 1 --configfile my.yaml" in msg
    assert "a is gated" in msg and "  - b (org/b)" in msg
    assert "https://huggingface.co/org/a" in hub.gated_message([a])


# ------------------------------------------------------------------------ the client, in-process
@pytest.mark.parametrize("pipeline", list(TINY_SPECS))
def test_each_family_downloads_with_its_patterns_and_loads_from_the_folder(
    tiny_hub, tmp_path, pipeline
):
    """The registry's download patterns keep every file a family's pipeline loads (the load
    from the downloaded folder, local files only, proves it) and leave out the rest."""
    spec = TINY_SPECS[pipeline]
    snap = download_weights(spec, tmp_path / "w", endpoint=tiny_hub.url)
    commit = tiny_hub.commit(spec["repo_id"])
    assert snap.record() == {"repo_id": spec["repo_id"], "revision": None, "commit": commit}
    files = downloaded(tmp_path / "w")
    assert "model_index.json" in files and any(f.endswith(".safetensors") for f in files)
    assert_same_bytes(tiny_hub, spec["repo_id"], tmp_path / "w", files)
    # The repos' single-file checkpoints and READMEs stay out, and so does SD's safety checker.
    assert [f for f in files if "/" not in f] == ["model_index.json"]
    assert not [f for f in files if f.startswith("safety_checker/")]
    pipe = load_pipeline(spec, tmp_path / "w")
    assert type(pipe).__name__ == pipeline


def test_variant_fetches_only_that_variant_and_loads_it(tiny_hub, tmp_path):
    spec = {**TINY_SPECS[SD], "repo_id": "tiny/sd-fp16", "variant": "fp16"}
    assert download_patterns(spec)[0][-1] == "*/*.fp16.safetensors"
    download_weights(spec, tmp_path / "w", endpoint=tiny_hub.url)
    weights = {f for f in downloaded(tmp_path / "w") if f.endswith(".safetensors")}
    assert weights and all(f.endswith(".fp16.safetensors") for f in weights)
    assert {f.split("/")[0] for f in weights} == {"unet", "vae", "text_encoder"}
    assert type(load_pipeline(spec, tmp_path / "w")).__name__ == SD


def test_clip_and_depth_fetch_only_what_transformers_loads(tiny_hub, tmp_path):
    """CLIP and Depth Anything come through the same download; the folder then loads to the
    very model the hub holds (same features, same depth maps)."""
    from synth2real.metrics.clip import image_features, load_clip
    from synth2real.probes.depth import depth_maps, load_depth_model

    images = np.random.default_rng(0).integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    for repo in ("tiny/clip", "tiny/depth"):
        spec = {"repo_id": repo, "download": TRANSFORMERS_DOWNLOAD}
        snap = download_weights(spec, tmp_path / repo, endpoint=tiny_hub.url)
        assert snap.commit == tiny_hub.commit(repo)
        files = downloaded(tmp_path / repo)
        assert "model.safetensors" in files and "config.json" in files
        assert not {f for f in files if f.endswith((".bin", ".msgpack", ".h5"))}
        assert_same_bytes(tiny_hub, repo, tmp_path / repo, files)
    ours, theirs = load_clip(tmp_path / "tiny/clip"), load_clip(tiny_hub.hub.root / "tiny/clip")
    assert type(ours.model).__name__ == "CLIPModel"
    np.testing.assert_array_equal(image_features(ours, images), image_features(theirs, images))
    ours = load_depth_model(tmp_path / "tiny/depth")
    theirs = load_depth_model(tiny_hub.hub.root / "tiny/depth")
    assert type(ours[0]).__name__ == "DepthAnythingForDepthEstimation"
    np.testing.assert_array_equal(depth_maps(*ours, images), depth_maps(*theirs, images))


@pytest.mark.parametrize(("token", "status"), [(None, 401), (OTHER_TOKEN, 403), (TEST_TOKEN, 200)])
def test_gated_repo_needs_a_granted_token_and_never_shows_it(
    tiny_hub, tmp_path, monkeypatch, caplog, token, status
):
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    before = len(tiny_hub.requests)
    with caplog.at_level(logging.DEBUG):
        if status == 200:
            snap = download_weights({"repo_id": "tiny/gated-sd"}, tmp_path, endpoint=tiny_hub.url)
            assert snap.commit == tiny_hub.commit("tiny/gated-sd")
            msg = ""
        else:
            with pytest.raises(WeightsDownloadError) as info:
                download_weights({"repo_id": "tiny/gated-sd"}, tmp_path, endpoint=tiny_hub.url)
            msg = str(info.value)
            assert info.value.__cause__.response.status_code == status
            assert "gated" in msg and "accept the license" in msg and "snakemake weights" in msg
            assert "https://huggingface.co/tiny/gated-sd" in msg
            assert ("HF_TOKEN is set" if token else "HF_TOKEN is not set") in msg
    mine = tiny_hub.requests[before:]
    hub_calls = [r for r in mine if not r[1].startswith("cdn:")]
    assert hub_calls and all(auth == bool(token) for _, _, auth in hub_calls)
    cdn_calls = [r for r in mine if r[1].startswith("cdn:")]
    assert bool(cdn_calls) == (status == 200)  # weights come from the CDN, without the token
    assert not any(auth for _, _, auth in cdn_calls)
    for secret in (TEST_TOKEN, OTHER_TOKEN):
        assert secret not in msg and secret not in caplog.text


def test_unknown_repo_revision_and_an_unreachable_hub_are_explained(tiny_hub, tmp_path):
    with pytest.raises(WeightsDownloadError, match="not found on the hub") as info:
        download_weights({"repo_id": "tiny/nothing"}, tmp_path, endpoint=tiny_hub.url)
    assert info.value.__cause__.response.status_code == 404
    with pytest.raises(WeightsDownloadError, match="has no revision 'nope'"):
        download_weights(
            {"repo_id": "tiny/clip", "revision": "nope"}, tmp_path, endpoint=tiny_hub.url
        )
    with pytest.raises(WeightsDownloadError, match="cannot reach the hub"):
        download_weights({"repo_id": "tiny/clip"}, tmp_path, endpoint=closed_port_url())


def test_offline_mode_is_explained(tmp_path):
    """HF_HUB_OFFLINE is read at import, so this runs in a fresh interpreter."""
    code = (
        "from synth2real.generate.pipelines import download_weights, WeightsDownloadError\n"
        "try:\n    download_weights({'repo_id': 'tiny/clip'}, 'w')\n"
        "except WeightsDownloadError as e:\n    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "workflow" / "lib")}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "offline mode" in out.stdout and "Unset HF_HUB_OFFLINE" in out.stdout, out.stderr


def test_a_tag_is_resolved_to_its_commit_and_the_flag_records_both(tiny_hub, tmp_path):
    """A pinned ``revision`` is resolved first and that commit is downloaded and recorded; the
    run page's versions table shows it."""
    from synth2real.figures.run_info import weights_commits
    from synth2real.io import atomic_write_json

    spec = {"repo_id": "tiny/clip", "revision": "v1", "download": TRANSFORMERS_DOWNLOAD}
    snap = download_weights(spec, tmp_path / "clip", endpoint=tiny_hub.url)
    commit = tiny_hub.commit("tiny/clip")
    assert snap.record() == {"repo_id": "tiny/clip", "revision": "v1", "commit": commit}
    assert any(r[1] == "/api/models/tiny/clip/revision/v1" for r in tiny_hub.requests)
    assert any(f"/tiny/clip/resolve/{commit}/" in r[1] for r in tiny_hub.requests)
    atomic_write_json(tmp_path / "clip" / ".complete", snap.record())
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / ".complete").touch()  # a flag from before commits were recorded
    rows = weights_commits([tmp_path / "clip" / ".complete", tmp_path / "old" / ".complete"])
    assert rows == [
        {"source": "weights", "package": "clip (tiny/clip@v1)", "version": commit},
        {"source": "weights", "package": "old", "version": "unrecorded"},
    ]


@pytest.mark.parametrize(("rule", "shell", "offline"), [
    ("depth_probe", None, True), ("extract_features", "0", True),
    ("download_weights", "1", False), ("download_weights", None, False),
])  # fmt: skip
def test_jobs_run_offline_and_downloads_online_whatever_the_shell_says(rule, shell, offline):
    """script_setup sets HF_HUB_OFFLINE per rule before anything imports huggingface_hub."""
    code = (
        f"import script_setup\nscript_setup.hub_mode({rule!r})\n"
        "from huggingface_hub import constants\nprint(constants.HF_HUB_OFFLINE)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    if shell is not None:
        env["HF_HUB_OFFLINE"] = shell
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "workflow" / "scripts", env=env,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(offline)


# ------------------------------------------------------------------------ the workflow
def closed_port_url() -> str:
    """An address where nothing listens: a hub that cannot be reached."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def write_config(tmp_path: Path, generators: dict[str, dict]) -> Path:
    """The e2e digits config with hub generators, CLIP features and the depth probe on, at a
    handful of images, and a registry of ``generators`` (id -> tiny registry entry)."""
    registry = tmp_path / "generators.yaml"
    entries = {
        g: {k: v for k, v in spec.items() if k not in ("id", "output_size")}
        for g, spec in generators.items()
    }
    # stored at the real images' size (data.image_size of e2e.yaml): the grid checks they agree
    registry.write_text(yaml.safe_dump({"output_size": 16, "generators": entries}))
    cfg = yaml.safe_load((ROOT / "tests" / "config" / "e2e.yaml").read_text())
    cfg.update(run="hub", generators_file=str(registry), generators=list(generators))
    cfg["data"].update(splits={"train": 3, "val": 1, "test": 2}, shard_size=100)
    cfg["synthetic"].update(splits={"train": 1, "val": 1, "test": 1}, shard_size=100)
    cfg["probes"]["depth"].update(enabled=True, model="tiny/depth")
    cfg["metrics"].update(feature_extractor="clip", clip_model="tiny/clip")
    cfg["scaling"] = {"ipc": [], "cpc": [], "generators": None}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(workdir: Path, config: Path, *targets: str, env: dict[str, str]):
    if not (workdir / "config").exists():
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config").symlink_to(ROOT / "config")
    cmd = [
        sys.executable, "-m", "snakemake", *targets, "--cores", "1",
        "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config),
    ]  # fmt: skip
    full_env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_HUB_OFFLINE")}
    proc = subprocess.run(
        cmd, cwd=ROOT, env={**full_env, **env}, capture_output=True, text=True, timeout=900
    )
    return proc.returncode, proc.stdout + proc.stderr


def hub_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf_home"), **extra}


def flag(workdir: Path, weights_id: str) -> dict:
    return json.loads((workdir / "resources" / "weights" / weights_id / ".complete").read_text())


SD_ENTRY = {"tiny-sd": TINY_SPECS[SD]}
GATED_ENTRY = {"tiny-gated": {**TINY_SPECS[SD], "repo_id": "tiny/gated-sd", "gated": True}}


@pytest.mark.slow
def test_weights_rule_fetches_every_model_then_jobs_load_them_offline(tiny_hub, tmp_path):
    """`snakemake weights` fetches the generator, CLIP and the depth model, recording each
    commit; then generation, CLIP features and the depth probe run with the hub unreachable."""
    config, workdir = write_config(tmp_path, SD_ENTRY), tmp_path / "run"
    rc, out = snakemake(workdir, config, "weights", env=hub_env(tmp_path, tiny_hub.url))
    assert rc == 0, out[-4000:]
    repos = {"tiny-sd": TINY_SPECS[SD]["repo_id"], "tiny--clip": "tiny/clip"}
    repos["tiny--depth"] = "tiny/depth"
    for wid, repo in repos.items():
        assert flag(workdir, wid) == {
            "repo_id": repo, "revision": None, "commit": tiny_hub.commit(repo),
        }  # fmt: skip
    rc, out = snakemake(workdir, config, "weights", "-n", env=hub_env(tmp_path, tiny_hub.url))
    assert rc == 0 and "Nothing to be done" in out, out[-3000:]

    served = len(tiny_hub.requests)
    P = RunPaths.of_run("hub")
    targets = [
        P.probe_view("depth", "real", "test"),
        P.features("real"),
        P.data_shard("tiny-sd-classname", "train", "00000"),
    ]
    rc, out = snakemake(workdir, config, *targets, env=hub_env(tmp_path, closed_port_url()))
    assert rc == 0, out[-6000:]
    assert len(tiny_hub.requests) == served, "a compute job reached for the hub"
    from synth2real.metrics.features import load_features
    from synth2real.shards import load_split

    feats, labels = load_features(workdir / targets[1])
    assert feats.shape == (30, 16) and sorted(set(labels.tolist())) == list(range(10))
    depth, _ = load_split(sorted((workdir / targets[0]).glob("*.parquet")))
    assert depth.shape[0] == 20 and np.array_equal(depth[..., 0], depth[..., 1])
    images, _ = load_split([workdir / targets[2]])
    assert images.shape == (10, 16, 16, 3)


@pytest.mark.slow
def test_missing_weights_stop_the_run_before_any_job(tiny_hub, tmp_path):
    config, workdir = write_config(tmp_path, SD_ENTRY), tmp_path / "run"
    rc, out = snakemake(workdir, config, env=hub_env(tmp_path, closed_port_url()))
    assert rc != 0
    assert "weights are missing for 3 model(s)" in out, out[-3000:]
    assert "tiny-sd (tiny/StableDiffusionPipeline)" in out and "tiny--clip (tiny/clip)" in out
    assert f"snakemake weights --cores 1 --configfile {config}" in out
    assert "download_weights" not in out.split("weights are missing")[0]  # nothing was planned
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()
    # A dry run shows the plan, downloads included, and says the real run would stop.
    rc, out = snakemake(workdir, config, "-n", env=hub_env(tmp_path, closed_port_url()))
    assert rc == 0, out[-3000:]
    assert "weights are missing" in out and "stops here, before any job" in out
    assert re.search(r"^download_weights\s+3$", out, flags=re.M)


@pytest.mark.slow
def test_gated_repo_without_token_stops_weights_before_any_download(tiny_hub, tmp_path):
    config, workdir = write_config(tmp_path, GATED_ENTRY), tmp_path / "run"
    served = len(tiny_hub.requests)
    rc, out = snakemake(workdir, config, "weights", env=hub_env(tmp_path, tiny_hub.url))
    assert rc != 0
    assert "are gated and HF_TOKEN is not set" in out, out[-3000:]
    assert "tiny-gated: https://huggingface.co/tiny/gated-sd" in out
    assert "accept the license" in out and "export HF_TOKEN=<token>" in out
    assert len(tiny_hub.requests) == served, "nothing is downloaded, not even the ungated repos"
    assert not (workdir / "resources").exists()
    # With the token the same command fetches it, and the token shows up nowhere.
    env = hub_env(tmp_path, tiny_hub.url, HF_TOKEN=TEST_TOKEN)
    rc, out = snakemake(workdir, config, "weights", env=env)
    assert rc == 0, out[-4000:]
    assert flag(workdir, "tiny-gated")["commit"] == tiny_hub.commit("tiny/gated-sd")
    logs = [p for p in workdir.rglob("*.log") if p.is_file()]
    assert logs and TEST_TOKEN not in out
    assert not [p for p in logs if TEST_TOKEN in p.read_text(errors="replace")]


@pytest.mark.slow
def test_standalone_server_builds_what_a_config_loads_and_serves_it(tmp_path):
    """The way the rehearsal runs it: fill a hub root from a workflow config, then serve it
    as its own process on a port, and download through it."""
    config, root = write_config(tmp_path, SD_ENTRY), tmp_path / "hub"
    server = [sys.executable, str(ROOT / "tests" / "hub_server.py"), "--root", str(root)]
    subprocess.run([*server, "--build-config", str(config)], cwd=ROOT, check=True, timeout=600)
    meta = json.loads((root / "hub.json").read_text())
    assert {r: m["kind"] for r, m in meta["repos"].items()} == {
        TINY_SPECS[SD]["repo_id"]: SD, "tiny/clip": "CLIPModel", "tiny/depth": "DepthAnything",
    }  # fmt: skip
    ready = tmp_path / "ready"
    proc = subprocess.Popen([*server, "--port", "0", "--ready-file", str(ready), "--quiet"])
    try:
        for _ in range(600):
            if ready.exists() and ready.read_text().strip():
                break
            proc.poll()
            assert proc.returncode is None, "the hub server exited"
            time.sleep(0.1)
        url = ready.read_text().strip()
        spec = {"repo_id": "tiny/depth", "download": TRANSFORMERS_DOWNLOAD}
        snap = download_weights(spec, tmp_path / "depth", endpoint=url)
        assert snap.commit == hub_server.Hub(root).repos["tiny/depth"].commit
    finally:
        proc.terminate()
        proc.wait(timeout=30)
