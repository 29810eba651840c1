"""One epoch of training and its validation pass."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from synth2real.evaluate.predict import autocast, predict
from synth2real.train.augment import TransformSpec, eval_transform
from synth2real.train.data import MemoryData, StreamData


def validate(
    model: nn.Module, data: StreamData | MemoryData, device: str, spec: TransformSpec
) -> tuple[float, float]:
    """(val loss, val top-1) over the whole val split, summed across ranks."""
    if isinstance(data, MemoryData):
        logits = predict(model, data.x_val, device=device, transform=eval_transform(spec))
        return F.cross_entropy(logits, data.y_val).item(), (
            logits.argmax(1) == data.y_val
        ).float().mean().item()
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for x, y in data.val:
            with autocast(device):
                logits = model(x.to(device, non_blocking=True)).float().cpu()
            sums += torch.tensor(
                [
                    F.cross_entropy(logits, y, reduction="sum").item(),
                    (logits.argmax(1) == y).sum().item(),
                    len(y),
                ],
                dtype=torch.float64,
            )
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])
