"""Files of a training job: the atomic checkpoint, the model file and the history CSV.

The checkpoint (written after every epoch, dropped when the job finishes) holds a
:class:`TrainState` and is resumed only under the same recipe fingerprint. The model file holds
the best epoch's weights and what is needed to rebuild the model: :func:`load_classifier` and
:func:`load_eval_transform` read it back for the evaluate and metrics stages.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from synth2real.io import atomic_output, write_csv_atomic
from synth2real.train.architectures import build_model
from synth2real.train.augment import TransformSpec, eval_transform
from synth2real.train.recipe import Recipe


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """torch.save whole or not at all: a killed job never leaves a torn checkpoint."""
    with atomic_output(path) as fh:
        torch.save(obj, fh)


@dataclass
class TrainState:
    """Where a run stands after an epoch: all that a resumed run needs besides the weights.

    Model selection is the paper's rule: the epoch of lowest validation loss on the training
    domain's val split wins (``best``, ``best_state``).
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_loss": math.inf})
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch: int = 0

    def add(self, record: dict[str, float], model: nn.Module) -> None:
        """Log an epoch's record; keep a CPU copy of the weights if it is the best so far."""
        self.history.append(record)
        if record["val_loss"] < self.best["val_loss"]:
            self.best = dict(record)
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_resume_state(
    path: Path | None,
    fingerprint: str,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    device: str,
) -> TrainState:
    """Restore model, optimiser and state from a checkpoint of the same recipe (``fingerprint``);
    a fresh state when there is none or it belongs to another recipe."""
    if not (path and path.exists()):
        return TrainState()
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if ckpt.get("fingerprint") != fingerprint:
        print(f"ignoring checkpoint from another recipe: {path}", flush=True)
        return TrainState()
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    state = TrainState(ckpt["history"], ckpt["best"], ckpt["best_state"], ckpt["epoch"] + 1)
    print(f"resuming from epoch {state.start_epoch} ({path})", flush=True)
    return state


def save_checkpoint(
    path: Path,
    fingerprint: str,
    epoch: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    state: TrainState,
) -> None:
    """The end-of-epoch checkpoint :func:`load_resume_state` reads."""
    save_atomic(
        {
            "fingerprint": fingerprint,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "history": state.history,
            "best": state.best,
            "best_state": state.best_state,
        },
        path,
    )


def save_model(
    path: str | os.PathLike[str],
    arch: str,
    num_classes: int,
    recipe: Recipe,
    spec: TransformSpec,
    state: TrainState,
) -> None:
    """The model file: best weights plus what :func:`load_classifier` and
    :func:`load_eval_transform` need to rebuild the model and its eval transform."""
    meta = {
        "arch": arch,
        "num_classes": num_classes,
        "arch_kwargs": recipe.arch_kwargs,
        "transform": asdict(spec),
    }
    save_atomic({"meta": meta, "state_dict": state.best_state, "best": state.best}, path)


def write_history(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Per-epoch log as CSV, written whole or not at all."""
    write_csv_atomic(pd.DataFrame(history), path)


def load_eval_transform(
    model_path: str | os.PathLike[str],
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The eval transform a model was trained with (older model files: the paper path's)."""
    blob = torch.load(model_path, map_location="cpu", weights_only=False)
    return eval_transform(TransformSpec(**blob["meta"].get("transform", {})))


def load_classifier(model_path: str | os.PathLike[str], device: str = "cpu") -> nn.Module:
    """Rebuild a trained classifier from the file
    :func:`synth2real.train.training.train_classifier` wrote."""
    blob = torch.load(model_path, map_location=device, weights_only=False)
    meta = blob["meta"]
    model = build_model(meta["arch"], meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()
