"""Training: seeded, resumable to the same weights, selects the lowest-val-loss epoch."""

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from synth2real.evaluate.predict import evaluate, predict
from synth2real.shards import load_split
from synth2real.train.augment import (
    SeededTransform,
    TransformSpec,
    cutmix,
    eval_transform,
    train_transform,
)
from synth2real.train.checkpoint import load_classifier
from synth2real.train.ddp import launch_distributed
from synth2real.train.recipe import Recipe, Runtime, lr_factor, resolve_recipe
from synth2real.train.training import train_classifier

RECIPE = dict(epochs=4, batch_size=8, lr=3e-3, warmup_epochs=1, crop_padding=1, hflip=True,
              arch_kwargs={"width": 4}, seed=7)  # fmt: skip


def run(tiny_splits, tmp_path, name, **kwargs):
    d = tmp_path / name
    recipe = Recipe(**RECIPE)
    best = train_classifier(
        tiny_splits["train"], tiny_splits["val"], "smallcnn", 3, recipe,
        d / "model.pt", d / "history.csv", checkpoint_path=d / "ckpt.pt", **kwargs,
    )  # fmt: skip
    return d, best


def test_resume_after_kill_equals_uninterrupted_run(tiny_splits, tmp_path):
    full, _ = run(tiny_splits, tmp_path, "full")
    part, _ = run(tiny_splits, tmp_path, "part", stop_after_epoch=2)
    assert (part / "ckpt.pt").exists() and not (part / "model.pt").exists()
    part, _ = run(tiny_splits, tmp_path, "part")  # the "rerun after preemption"
    assert not (part / "ckpt.pt").exists()  # finished runs drop their checkpoint
    a = torch.load(full / "model.pt", weights_only=False)
    b = torch.load(part / "model.pt", weights_only=False)
    assert a["best"]["epoch"] == b["best"]["epoch"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    ha, hb = pd.read_csv(full / "history.csv"), pd.read_csv(part / "history.csv")
    cols = ["epoch", "train_loss", "val_loss", "val_top1"]
    pd.testing.assert_frame_equal(ha[cols], hb[cols])


def test_lowest_val_loss_epoch_is_the_saved_model(tiny_splits, tmp_path):
    d, best = run(tiny_splits, tmp_path, "sel")
    history = pd.read_csv(d / "history.csv")
    assert len(history) == RECIPE["epochs"]
    assert best["epoch"] == int(history.loc[history.val_loss.idxmin(), "epoch"])
    model = load_classifier(d / "model.pt")
    x, y = (torch.from_numpy(a) for a in load_split(tiny_splits["val"]))
    val_loss = F.cross_entropy(predict(model, x), y).item()
    assert val_loss == pytest.approx(history.val_loss.min(), rel=1e-5)


def test_checkpoint_of_another_recipe_is_ignored(tiny_splits, tmp_path):
    d, _ = run(tiny_splits, tmp_path, "x", stop_after_epoch=1)
    other = Recipe(**{**RECIPE, "lr": 1e-2})
    best = train_classifier(
        tiny_splits["train"], tiny_splits["val"], "smallcnn", 3, other,
        d / "model.pt", d / "history.csv", checkpoint_path=d / "ckpt.pt",
    )  # fmt: skip
    assert len(pd.read_csv(d / "history.csv")) == RECIPE["epochs"]  # trained from scratch
    assert best["epoch"] >= 1


def test_learns_the_toy_problem(tiny_splits, tmp_path):
    recipe = Recipe(**{**RECIPE, "epochs": 10, "crop_padding": 0, "arch_kwargs": {"width": 8}})
    d = tmp_path / "learn"
    train_classifier(
        tiny_splits["train"], tiny_splits["val"], "smallcnn", 3, recipe,
        d / "model.pt", d / "history.csv",
    )  # fmt: skip
    images, labels = load_split(tiny_splits["test"])
    result = evaluate(load_classifier(d / "model.pt"), images, labels, 3)
    assert result["top1"] >= 0.8
    assert result["top5"] == 1.0  # k = min(5, classes) = 3
    assert set(result["per_class"]) == {0, 1, 2}


def test_lr_schedule_warms_up_then_decays():
    r = Recipe(epochs=10, warmup_epochs=2)
    f = [lr_factor(s, 10, r) for s in range(100)]
    assert f[0] == pytest.approx(0.05) and f[19] == pytest.approx(1.0)
    assert f[20] == pytest.approx(1.0) and f[-1] < 0.01
    assert all(a >= b for a, b in zip(f[20:], f[21:]))


# --- recipe: official, streaming loader, DDP -------------------------------------------------

TRAIN = dict(epochs=3, batch_size=8, lr=3e-3, warmup_epochs=1)
STREAM = Runtime(loader="stream", workers=0)


def official(**over):
    """Official recipe on the 12 px toy problem (input_size 12 instead of 224: explicit keys
    override the preset)."""
    return resolve_recipe({**TRAIN, "recipe": "official", "input_size": 12, **over},
                          "identity", "smallcnn", seed=7, arch_kwargs={"width": 4})  # fmt: skip


def test_resolve_recipe_presets_and_overrides():
    cfg = {**TRAIN, "recipe": "paper", "loader_workers": 3, "cutmix_alpha": None}
    paper, runtime = resolve_recipe(cfg, "identity", "resnet50", seed=1)
    assert (paper.cutmix_alpha, paper.grad_clip_norm, paper.augment) == (0.0, 0.0, "paper")
    assert runtime.workers == 3 and paper.warmup_start_factor is None
    off, _ = resolve_recipe({**TRAIN, "recipe": "official"}, "identity", "resnet50", seed=1)
    assert (off.cutmix_alpha, off.cutmix_p, off.grad_clip_norm) == (1.0, 1.0, 1.0)
    assert (off.warmup_start_factor, off.min_lr_factor) == (1e-5, 1e-8)
    assert (off.augment, off.input_size, off.normalize) == ("official_rgb", 224, "imagenet")
    table = {("depth", "resnet50"): ("official_depth", 224),
             ("lowpass", "resnet50"): ("official_band", 224),
             ("highpass", "resnet50"): ("official_band", 224),
             ("identity", "bagnet9"): ("official_texture", 128)}  # fmt: skip
    for (probe, arch), want in table.items():
        r, _ = resolve_recipe({**TRAIN, "recipe": "official"}, probe, arch, seed=1)
        assert (r.augment, r.input_size) == want
    no_clip, _ = resolve_recipe({**TRAIN, "recipe": "official", "grad_clip_norm": 0}, "identity",
                                "resnet50", seed=1)  # fmt: skip
    assert no_clip.grad_clip_norm == 0 and no_clip.cutmix_alpha == 1.0
    assert off.fingerprint("resnet50", 200) != paper.fingerprint("resnet50", 200)
    assert no_clip.fingerprint("resnet50", 200) != off.fingerprint("resnet50", 200)
    with pytest.raises(ValueError, match="unknown train.recipe"):
        resolve_recipe({**TRAIN, "recipe": "other"}, "identity", "resnet50", seed=1)


def test_official_warmup_starts_at_start_factor_and_cosine_has_a_floor():
    r, _ = official()
    f = [lr_factor(s, 10, r) for s in range(30)]
    assert f[0] == pytest.approx(1e-5) and f[5] == pytest.approx(1e-5 + (1 - 1e-5) * 0.5)
    assert f[10] == pytest.approx(1.0) and min(f) >= 1e-8
    assert lr_factor(29, 10, r) == pytest.approx(max(1e-8, 0.5 * (1 + math.cos(math.pi * 19 / 20))))


def test_cutmix_mixes_labels_by_pasted_area():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 20, 30).clone()
    y = torch.tensor([0, 1, 2, 3])
    seen = set()
    for seed in range(20):
        mixed, soft, lam = cutmix(x, y, 5, 1.0, np.random.default_rng(seed))
        # Image i keeps its own value outside the box and holds image i-1's inside it.
        own = (mixed == x).float().mean(dim=(1, 2, 3))
        assert torch.allclose(own, torch.full((4,), lam), atol=1e-6)
        pasted = (mixed == x.roll(1, 0)).float().mean(dim=(1, 2, 3))
        assert torch.allclose(pasted, torch.full((4,), 1 - lam), atol=1e-6)
        assert torch.allclose(soft[torch.arange(4), y], torch.full((4,), lam))
        assert torch.allclose(soft[torch.arange(4), y.roll(1, 0)], torch.full((4,), 1 - lam))
        assert torch.allclose(soft.sum(1), torch.ones(4))
        seen.add(round(lam, 3))
    assert len(seen) > 10  # λ really is drawn, not fixed


def test_official_rgb_augment_is_seeded_per_image_and_changes_pixels():
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 64, 48), np.uint8))
    spec = TransformSpec(augment="official_rgb", input_size=32, normalize="imagenet")
    t = SeededTransform(train_transform(spec), seed=3)
    a, b, c = t(image, 0, 5), t(image, 0, 5), t(image, 1, 5)
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)  # same key, same draw; next epoch differs
    state = torch.get_rng_state()
    t(image, 2, 5)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone
    ev = eval_transform(spec)(image.permute(1, 2, 0)[None])
    assert ev.shape == (1, 3, 32, 32)
    assert torch.equal(ev, eval_transform(spec)(image.permute(1, 2, 0)[None]))
    tex = TransformSpec(augment="official_texture", input_size=128, normalize="imagenet")
    big = torch.zeros(3, 256, 256, dtype=torch.uint8)
    assert SeededTransform(train_transform(tex), 0)(big, 0, 0).shape == (3, 128, 128)
    assert eval_transform(tex)(big.permute(1, 2, 0)[None]).shape == (1, 3, 128, 128)


def run_stream(tiny_splits, tmp_path, name, recipe, runtime=STREAM, **kwargs):
    d = tmp_path / name
    best = train_classifier(
        tiny_splits["train"], tiny_splits["val"], "smallcnn", 3, recipe,
        d / "model.pt", d / "history.csv", checkpoint_path=d / "ckpt.pt", runtime=runtime,
        **kwargs,
    )  # fmt: skip
    return d, best


def total_norm(model):
    """Global L2 norm of the gradients, as clip_grad_norm_ measures it."""
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))


def weights(d):
    return torch.load(d / "model.pt", weights_only=False)["state_dict"]


def test_official_recipe_changes_training_and_clips_gradients(tiny_splits, tmp_path):
    off, _ = official()
    norms = []
    d_off, _ = run_stream(
        tiny_splits, tmp_path, "off", off, on_step=lambda m: norms.append(total_norm(m))
    )
    assert len(norms) == 3 * 6 and max(norms) <= 1.0 + 1e-5  # 48 images, batch 8, 3 epochs
    # Without clipping the same steps exceed 1, so the clip really acts.
    raw = []
    no_clip, _ = official(grad_clip_norm=0, lr=1.0)
    run_stream(tiny_splits, tmp_path, "raw", no_clip, on_step=lambda m: raw.append(total_norm(m)))
    assert max(raw) > 1.0
    # Same seed and data, recipe paper vs official: different weights.
    paper, _ = resolve_recipe({**TRAIN, "recipe": "paper", "input_size": 12}, "identity",
                              "smallcnn", seed=7, arch_kwargs={"width": 4})  # fmt: skip
    d_pap, _ = run_stream(tiny_splits, tmp_path, "pap", paper)
    wa, wb = weights(d_off), weights(d_pap)
    assert not torch.equal(wa["fc.weight"], wb["fc.weight"])
    # Without CutMix the official run differs too: CutMix was active.
    d_nocm, _ = run_stream(tiny_splits, tmp_path, "nocm", official(cutmix_alpha=0)[0])
    assert not torch.equal(wa["fc.weight"], weights(d_nocm)["fc.weight"])
    meta = torch.load(d_off / "model.pt", weights_only=False)["meta"]
    assert meta["transform"]["augment"] == "official_rgb"


def test_resume_equality_under_official_recipe_and_worker_count(tiny_splits, tmp_path):
    recipe, _ = official()
    full, _ = run_stream(tiny_splits, tmp_path, "full", recipe)
    run_stream(tiny_splits, tmp_path, "part", recipe, stop_after_epoch=1)
    # Resume with 2 loader workers: per-image seeds make the worker count irrelevant.
    part, _ = run_stream(tiny_splits, tmp_path, "part", recipe,
                         runtime=Runtime(loader="stream", workers=2))  # fmt: skip
    a, b = weights(full), weights(part)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ha, hb = pd.read_csv(full / "history.csv"), pd.read_csv(part / "history.csv")
    cols = ["epoch", "train_loss", "val_loss", "val_top1"]
    pd.testing.assert_frame_equal(ha[cols], hb[cols])


def test_memory_and_stream_sources_train_alike(tiny_splits, tmp_path):
    recipe, _ = official()
    a, _ = run_stream(tiny_splits, tmp_path, "mem", recipe, runtime=Runtime(loader="memory"))
    b, _ = run_stream(tiny_splits, tmp_path, "str", recipe)
    cached = Runtime(loader="stream", decoded_cache=str(tmp_path / "cache"))
    c, _ = run_stream(tiny_splits, tmp_path, "cache", recipe, runtime=cached)
    for k in weights(a):
        assert torch.equal(weights(a)[k], weights(b)[k]), k
        assert torch.equal(weights(a)[k], weights(c)[k]), k


#: DDP may differ from one process by this many times the measured noise floor. Over seeds 1-4
#: and 7 on a 2-core AMD EPYC, the worst tensor's DDP difference was 1.75x its floor (the
#: floor is the largest of three reruns), so 8 leaves ~4.5x headroom, while a rank that skips
#: its gradient all-reduce misses by 1e4 times or more.
NOISE_MULTIPLE = 8
#: ...plus this many float32 ulps of the value: a machine whose reruns happen to be bit
#: identical on a tensor must not make one rounding of the all-reduce fail the test.
ULPS = 4


def noise_tolerance(reference, reruns, scale):
    """Tolerance = NOISE_MULTIPLE x (largest |rerun - reference|) + ULPS ulps of ``scale``."""
    floor = max(float((r - reference).abs().max()) for r in reruns)
    return NOISE_MULTIPLE * floor + ULPS * torch.finfo(torch.float32).eps * scale, floor


def test_ddp_two_gloo_ranks_match_one_process(tiny_splits, tmp_path):
    """torchrun, 2 CPU processes (gloo), LayerNorm-only ViT (no BatchNorm, whose per-rank
    statistics would legitimately differ): one model file, same training as one process.

    "Same" up to float reduction order, which DDP changes (each rank sums the gradient of its
    half batch, gloo adds the halves) and which Adam amplifies where a gradient is ~0: the key
    slice of qkv.bias has an exactly zero true gradient (softmax ignores a per-query shift), so
    its m / (sqrt(v) + eps) updates are pure rounding noise, ~1e-5, while other tensors differ
    by ~1e-7. A fixed atol is therefore a guess about this machine's kernels. Instead, the noise
    floor is measured in the same run: three one-process reruns that differ only in reduction
    order (gradient accumulation over 2 or 4 micro-batches, 2 threads). Each tensor and loss
    of the DDP run must lie within NOISE_MULTIPLE times its floor (+ ULPS ulps); and training
    must have moved every tensor much further than that, so the check cannot pass vacuously.
    """
    vit = {"img_size": 12, "patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2}
    recipe, _ = resolve_recipe({**TRAIN, "epochs": 2, "recipe": "paper", "input_size": 12},
                               "identity", "vit_tiny", seed=7, arch_kwargs=vit)  # fmt: skip

    def job(name, **over):
        d = tmp_path / name
        return dict(
            train_shards=tiny_splits["train"], val_shards=tiny_splits["val"], arch="vit_tiny",
            num_classes=3, recipe=replace(recipe, **over), runtime=STREAM,
            model_path=d / "model.pt", history_path=d / "history.csv",
            checkpoint_path=d / "ckpt.pt",
        )  # fmt: skip

    init = []  # the weights before the first optimiser step, as the library initialised them
    train_classifier(
        **job("single"),
        on_step=lambda m: init or init.append({k: v.clone() for k, v in m.state_dict().items()}),
    )
    train_classifier(**job("micro4", micro_batch=4))  # mathematically the same steps
    train_classifier(**job("micro2", micro_batch=2))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_classifier(**job("threads2"))
    finally:
        torch.set_num_threads(threads)
    launch_distributed(2, job("ddp"))
    d = tmp_path / "ddp"
    assert sorted(p.name for p in d.iterdir()) == ["history.csv", "model.pt"]

    reruns = ("micro4", "micro2", "threads2")
    a, b = weights(tmp_path / "single"), weights(d)
    assert set(a) == set(b)
    rows, too_far, too_still = [], [], []
    for k in a:
        tol, floor = noise_tolerance(a[k], [weights(tmp_path / r)[k] for r in reruns],
                                     float(a[k].abs().max()))  # fmt: skip
        diff = float((a[k] - b[k]).abs().max())
        moved = float((a[k] - init[0][k]).abs().max())
        rows.append(f"{k}: DDP diff {diff:.3g}, noise floor {floor:.3g}, tol {tol:.3g}, "
                    f"moved {moved:.3g}")  # fmt: skip
        if diff > tol:
            too_far.append(k)
        if moved < 10 * tol:
            too_still.append(k)
    table = "\n".join(rows)
    print(table)  # the measured floor and margin, shown with -s or on failure
    assert not too_far, f"DDP outside the noise floor on {too_far}:\n{table}"
    assert not too_still, f"training barely moved {too_still}:\n{table}"
    ha, hb = pd.read_csv(tmp_path / "single" / "history.csv"), pd.read_csv(d / "history.csv")
    hr = [pd.read_csv(tmp_path / r / "history.csv") for r in reruns]
    for col in ("train_loss", "val_loss"):
        ref = torch.tensor(ha[col].to_numpy())
        tol, floor = noise_tolerance(ref, [torch.tensor(h[col].to_numpy()) for h in hr],
                                     float(ref.abs().max()))  # fmt: skip
        diff = float((ref - torch.tensor(hb[col].to_numpy())).abs().max())
        assert diff <= tol, f"{col}: DDP differs by {diff:.3g}; noise floor {floor:.3g}"


def test_compile_option_traces_the_model_and_keeps_plain_weights(
    tiny_splits, tmp_path, monkeypatch
):
    """compile: true wraps the training forward in torch.compile. Dynamo traces for real; the
    backend is swapped for "eager" (inductor would need minutes of C++ compiling on a CPU),
    so the weights must equal an uncompiled run's, and the saved keys have no _orig_mod."""
    calls = []
    real = torch.compile

    def eager_compile(model, **kwargs):
        calls.append(type(model).__name__)
        return real(model, backend="eager")

    monkeypatch.setattr(torch, "compile", eager_compile)
    recipe, _ = official(epochs=1)
    a, _ = run_stream(tiny_splits, tmp_path, "compiled", recipe,
                      runtime=Runtime(loader="stream", compile=True))  # fmt: skip
    b, _ = run_stream(tiny_splits, tmp_path, "plain", recipe)
    assert calls == ["SmallCNN"]
    wa, wb = weights(a), weights(b)
    assert set(wa) == set(wb) and not any("_orig_mod" in k for k in wa)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_whole_configs_keep_their_train_path(tiny_splits, tmp_path):
    """A --configfile is the whole config (schema defaults fill the rest): the demo and test
    configs get the paper recipe without naming it, the paper config the official one (else
    CutMix and 224 px crops of 16 px digits), and a misfit is refused."""
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    schema = str(root / "workflow" / "schemas" / "config.schema.yaml")

    def train_of(name):
        config = yaml.safe_load((root / name).read_text())
        validate(config, schema)
        return config["train"]

    official, _ = resolve_recipe(train_of("config/config.yaml"), "identity", "smallcnn", seed=0)
    assert official.input_size == 224 and official.cutmix_alpha == 1.0
    for name in ("config/demo.yaml", "tests/config/e2e.yaml", "tests/config/slurm.yaml"):
        recipe, runtime = resolve_recipe(train_of(name), "identity", "smallcnn", seed=0)
        assert (recipe.recipe, recipe.normalize, recipe.cutmix_alpha) == ("paper", "paper", 0), name
        assert recipe.input_size is None and runtime.workers == 0, name
        assert recipe.transform_spec() == TransformSpec(crop_padding=2, hflip=False), name
    bad, _ = resolve_recipe({**TRAIN, "input_size": 224}, "identity", "smallcnn", seed=0)
    with pytest.raises(ValueError, match="input_size=224 is larger than the 12x12 images"):
        run_stream(tiny_splits, tmp_path, "bad", bad)
