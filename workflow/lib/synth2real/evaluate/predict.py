"""A trained classifier's outputs on uint8 images: logits (:func:`predict`) and accuracies
(:func:`evaluate`). Training validates through :func:`predict` too (in-memory path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synth2real.train.data import to_input


def autocast(device: str) -> torch.autocast:
    """bfloat16 autocast on CUDA, a no-op elsewhere: the one precision policy of every forward
    pass, in training, validation and evaluation alike."""
    return torch.autocast(
        device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    batch_size: int = 512,
    device: str = "cpu",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits (N, classes) for uint8 images (N, H, W, 3), in eval mode.

    ``transform``: the model's eval transform
    (:func:`synth2real.train.checkpoint.load_eval_transform`); default
    :func:`to_input`, the paper path's full-image input.
    """
    transform = transform or to_input
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = transform(images[start : start + batch_size]).to(device)
        with autocast(device):
            out.append(model(x).float().cpu())
    return torch.cat(out)


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    device: str = "cpu",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Top-1, top-5 and per-class accuracy on uint8 images (``transform``: the model's eval
    transform, :func:`synth2real.train.checkpoint.load_eval_transform`)."""
    logits = predict(model, torch.from_numpy(images), device=device, transform=transform)
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
