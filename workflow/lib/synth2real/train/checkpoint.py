"""Files of a training job: the atomic checkpoint, the model file and the history CSV.

:func:`load_classifier` and :func:`load_eval_transform` read a model file back; the evaluate
and metrics stages use them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn

from synth2real.shards import atomic_output
from synth2real.train.architectures import build_model
from synth2real.train.augment import TransformSpec, eval_transform


def save_atomic(obj: object, path: str | os.PathLike[str]) -> None:
    """torch.save whole or not at all: a killed job never leaves a torn checkpoint."""
    with atomic_output(path) as fh:
        torch.save(obj, fh)


def write_history(history: list[dict[str, float]], path: str | os.PathLike[str]) -> None:
    """Per-epoch log as CSV, written whole or not at all."""
    with atomic_output(path) as fh:
        fh.write(pd.DataFrame(history).to_csv(index=False).encode())


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
