"""Training: seeded, resumable to the same weights, selects the lowest-val-loss epoch."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from synth2real.shards import load_split
from synth2real.training import (
    Recipe,
    evaluate,
    load_classifier,
    lr_factor,
    predict,
    train_classifier,
)

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
