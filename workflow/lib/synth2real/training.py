"""Train a classifier on one dataset's shards, with the paper's recipe and safe resumption.

Design points:
- The recipe (optimiser, lr, warm-up + cosine, epochs, batch size) comes from config, so the
  same function trains the demo's small CNN and the paper's ResNet-50.
- Every epoch ends with an atomic checkpoint. A killed job (preemption, ``scancel``) resumes
  from its last finished epoch. All randomness of an epoch (shuffle order, augmentation,
  dropout) is re-seeded from (seed, epoch), so a resumed run ends with the same weights as an
  uninterrupted one.
- Model selection uses the lowest validation loss on the *training domain's* val split (the
  paper's rule), never the real test split.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from synth2real.architectures import build_model
from synth2real.seeding import derive_seed
from synth2real.shards import atomic_output, load_split

MEAN, STD = 0.5, 0.25


@dataclass
class Recipe:
    """Training hyper-parameters; field names are the config keys under ``train``."""

    epochs: int = 80
    batch_size: int = 1024
    lr: float = 1e-3
    warmup_epochs: int = 5
    weight_decay: float = 0.0
    optimizer: str = "adam"
    label_smoothing: float = 0.0
    crop_padding: int = 0
    hflip: bool = True
    micro_batch: int | None = None  # gradient accumulation when a batch doesn't fit
    seed: int = 0
    arch_kwargs: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self, arch: str, num_classes: int) -> str:
        """Hash of all that shapes the result; a checkpoint of another recipe is ignored."""
        blob = json.dumps({"arch": arch, "classes": num_classes, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W)."""
    return (images.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD


def augment(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random translation (pad + crop) and optional horizontal flip, drawn from ``gen``."""
    n, _, h, w = x.shape
    if recipe.crop_padding:
        p = recipe.crop_padding
        padded = F.pad(x, (p, p, p, p), mode="replicate")
        dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h)[None])[:, None, :, None].expand(
            n, x.shape[1], h, w + 2 * p
        )
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None])[:, None, None, :].expand(n, x.shape[1], h, w)
        x = x.gather(3, cols)
    if recipe.hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def lr_factor(step: int, steps_per_epoch: int, recipe: Recipe) -> float:
    """Linear warm-up over ``warmup_epochs``, then cosine decay to zero."""
    warm = recipe.warmup_epochs * steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay
        )
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; use adam, adamw or sgd")


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """torch.save whole or not at all: a killed job never leaves a torn checkpoint."""
    with atomic_output(path) as fh:
        torch.save(obj, fh)


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, batch_size: int = 512, device: str = "cpu"
) -> torch.Tensor:
    """Logits (N, classes) for uint8 images, in eval mode."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size]).to(device)
        with torch.autocast(
            device_type=device.split(":")[0],
            dtype=torch.bfloat16,
            enabled=device.startswith("cuda"),
        ):
            out.append(model(x).float().cpu())
    return torch.cat(out)


def train_classifier(
    train_shards: list[str],
    val_shards: list[str],
    arch: str,
    num_classes: int,
    recipe: Recipe,
    model_path: str | os.PathLike[str],
    history_path: str | os.PathLike[str],
    checkpoint_path: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    stop_after_epoch: int | None = None,
) -> dict[str, Any]:
    """Train ``arch`` and write the best-val-loss weights to ``model_path``.

    ``stop_after_epoch`` ends the run early as if the job had been killed then (tests use it to
    check that resuming reproduces an uninterrupted run). Returns the best epoch's record.
    """
    x_train, y_train = (torch.from_numpy(a) for a in load_split(train_shards))
    x_val, y_val = (torch.from_numpy(a) for a in load_split(val_shards))
    if int(y_train.max()) >= num_classes or int(y_val.max()) >= num_classes:
        raise ValueError(f"labels exceed num_classes={num_classes}")
    fingerprint = recipe.fingerprint(arch, num_classes)
    torch.manual_seed(derive_seed(recipe.seed, "init"))
    model = build_model(arch, num_classes, **recipe.arch_kwargs).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, recipe)
    micro = recipe.micro_batch or recipe.batch_size
    steps_per_epoch = math.ceil(len(x_train) / recipe.batch_size)
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"val_loss": math.inf}
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0

    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    if ckpt_path and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ckpt.get("fingerprint") == fingerprint:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            history, best, best_state = ckpt["history"], ckpt["best"], ckpt["best_state"]
            start_epoch = ckpt["epoch"] + 1
            print(f"resuming from epoch {start_epoch} ({ckpt_path})", flush=True)
        else:
            print(f"ignoring checkpoint from another recipe: {ckpt_path}", flush=True)

    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(derive_seed(recipe.seed, "epoch", epoch))
        gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "shuffle", epoch))
        order = torch.randperm(len(x_train), generator=gen)
        model.train()
        total_loss, seen = 0.0, 0
        for step in tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            mininterval=10,
            leave=False,
        ):
            idx = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            for g in opt.param_groups:
                g["lr"] = recipe.lr * lr_factor(
                    epoch * steps_per_epoch + step, steps_per_epoch, recipe
                )
            opt.zero_grad(set_to_none=True)
            for sub in idx.split(micro):
                x = augment(to_input(x_train[sub]), recipe, gen).to(device)
                y = y_train[sub].to(device)
                with torch.autocast(
                    device_type=device.split(":")[0],
                    dtype=torch.bfloat16,
                    enabled=device.startswith("cuda"),
                ):
                    loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
                (loss * len(sub) / len(idx)).backward()
                total_loss += loss.item() * len(sub)
                seen += len(sub)
            opt.step()
        logits = predict(model, x_val, device=device)
        val_loss = F.cross_entropy(logits, y_val).item()
        val_acc = (logits.argmax(1) == y_val).float().mean().item()
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / seen,
            "val_loss": val_loss,
            "val_top1": val_acc,
            "seconds": time.perf_counter() - t0,
            "images_per_s": seen / (time.perf_counter() - t0),
        }
        history.append(record)
        print(json.dumps(record), flush=True)
        if val_loss < best["val_loss"]:
            best = dict(record)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if ckpt_path:
            save_atomic(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "history": history,
                    "best": best,
                    "best_state": best_state,
                },
                ckpt_path,
            )
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return best

    meta = {"arch": arch, "num_classes": num_classes, "arch_kwargs": recipe.arch_kwargs}
    save_atomic({"meta": meta, "state_dict": best_state, "best": best}, model_path)
    write_history(history, history_path)
    if ckpt_path:
        ckpt_path.unlink(missing_ok=True)  # finished: the model file supersedes it
    return best


def write_history(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Per-epoch log as CSV, written whole or not at all."""
    with atomic_output(path) as fh:
        fh.write(pd.DataFrame(history).to_csv(index=False).encode())


def load_classifier(model_path: str | os.PathLike[str], device: str = "cpu") -> nn.Module:
    """Rebuild a trained classifier from the file :func:`train_classifier` wrote."""
    blob = torch.load(model_path, map_location=device, weights_only=False)
    meta = blob["meta"]
    model = build_model(meta["arch"], meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def evaluate(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, num_classes: int, device: str = "cpu"
) -> dict[str, Any]:
    """Top-1, top-5 and per-class accuracy on uint8 images."""
    logits = predict(model, torch.from_numpy(images), device=device)
    y = torch.from_numpy(labels)
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices
    correct1 = topk[:, 0] == y
    per_class = {
        int(c): float(correct1[y == c].float().mean()) for c in range(num_classes) if (y == c).any()
    }
    return {
        "top1": float(correct1.float().mean()),
        "top5": float((topk == y[:, None]).any(1).float().mean()),
        "loss": float(F.cross_entropy(logits, y)),
        "n": int(len(y)),
        "per_class": per_class,
    }
