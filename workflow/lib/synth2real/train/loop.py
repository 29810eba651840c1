"""One epoch of training and its validation pass.

Seeding: the global torch RNG (dropout) is re-seeded per (seed, epoch[, rank]), the shuffle
generator per (seed, epoch) and CutMix per (seed, epoch, step, rank), so an epoch's result
depends only on the model and optimiser state it starts from: a resumed run matches an
uninterrupted one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from synth2real.evaluate.predict import autocast, predict
from synth2real.seeding import derive_seed
from synth2real.train.augment import TransformSpec, cutmix, eval_transform
from synth2real.train.data import MemoryData, TrainData
from synth2real.train.recipe import Recipe, lr_factor


@dataclass
class Trainer:
    """What a training step needs.

    ``model`` is the bare module (its weights are checkpointed and clipped); ``net`` the module
    the gradients flow through (``model`` or its DDP wrapper); ``forward`` calls ``net``,
    compiled or not. ``on_step(model)`` runs after clipping, before each optimiser step.
    """

    model: nn.Module
    net: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    opt: torch.optim.Optimizer
    recipe: Recipe
    num_classes: int
    device: str
    rank: int = 0
    world: int = 1
    on_step: Callable[[nn.Module], None] | None = None


def run_epoch(t: Trainer, data: TrainData, epoch: int, spec: TransformSpec) -> dict[str, float]:
    """Train one epoch, validate, and return (and on rank 0 print) the epoch's record."""
    t0 = time.perf_counter()
    total_loss, seen = train_one_epoch(t, data, epoch)
    val_loss, val_acc = validate(t.model, data, t.device, spec)
    record = {
        "epoch": epoch + 1,
        "train_loss": total_loss / seen,
        "val_loss": val_loss,
        "val_top1": val_acc,
        "seconds": time.perf_counter() - t0,
        "images_per_s": seen / (time.perf_counter() - t0),
    }
    if t.rank == 0:
        print(json.dumps(record), flush=True)
    return record


def train_one_epoch(t: Trainer, data: TrainData, epoch: int) -> tuple[float, int]:
    """(summed train loss, images seen) of one epoch, over all ranks."""
    recipe = t.recipe
    torch.manual_seed(derive_seed(recipe.seed, "epoch", epoch, *([t.rank] if t.rank else [])))
    gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "shuffle", epoch))
    t.model.train()
    # Summed on the device in float64 (= the float sum of .item()s), read once per epoch: no
    # host sync per step.
    loss_sum = torch.zeros((), dtype=torch.float64, device=t.device)
    seen = 0
    steps_per_epoch = data.steps_per_epoch
    batches = tqdm(
        data.epoch(epoch, gen),
        total=steps_per_epoch,
        desc=f"epoch {epoch + 1}/{recipe.epochs}",
        mininterval=10,
        leave=False,
        disable=t.rank != 0,
    )
    for step, (x_step, y_step, global_len) in enumerate(batches):
        for g in t.opt.param_groups:
            g["lr"] = recipe.lr * lr_factor(epoch * steps_per_epoch + step, steps_per_epoch, recipe)
        seen += train_step(t, x_step, y_step, global_len, epoch, step, loss_sum)
    total_loss = float(loss_sum)
    if t.world > 1:
        sums = torch.tensor([total_loss, seen], dtype=torch.float64)
        dist.all_reduce(sums)
        total_loss, seen = float(sums[0]), int(sums[1])
    return total_loss, seen


def train_step(
    t: Trainer,
    x_step: torch.Tensor,
    y_step: torch.Tensor,
    global_len: int,
    epoch: int,
    step: int,
    loss_sum: torch.Tensor,
) -> int:
    """One optimiser step on this rank's share of a global batch of ``global_len`` images, in
    micro-batches. Adds each micro-batch's summed loss to ``loss_sum`` in place; returns the
    number of images this rank saw."""
    recipe, device = t.recipe, t.device
    # The whole step's input goes to the device first, so CutMix runs there (on a
    # 1024 x 3 x 224 x 224 batch a CPU copy would cost the main process ~0.2 s).
    x_step = x_step.to(device, non_blocking=True)
    y_step = y_step.to(device, non_blocking=True)
    target: torch.Tensor = y_step
    if recipe.cutmix_alpha > 0:
        rng = np.random.default_rng(derive_seed(recipe.seed, "cutmix", epoch, step, t.rank))
        if rng.random() < recipe.cutmix_p:
            x_step, target, _ = cutmix(x_step, y_step, t.num_classes, recipe.cutmix_alpha, rng)
    t.opt.zero_grad(set_to_none=True)
    micro = recipe.micro_batch or recipe.batch_size
    pieces = list(zip(x_step.split(micro), target.split(micro), strict=True))
    seen = 0
    for i, (x, y) in enumerate(pieces):
        if device.startswith("cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        last = i == len(pieces) - 1
        # DDP all-reduces gradients only on the last micro-batch of a step.
        with nullcontext() if last or t.world == 1 else t.net.no_sync():  # type: ignore[operator]
            with autocast(device):
                loss = F.cross_entropy(t.forward(x), y, label_smoothing=recipe.label_smoothing)
            # Mean over the *global* batch; DDP averages ranks, hence * world.
            (loss * len(x) / global_len * t.world).backward()
        loss_sum += loss.detach().double() * len(x)
        seen += len(x)
    if recipe.grad_clip_norm > 0:
        nn.utils.clip_grad_norm_(t.model.parameters(), recipe.grad_clip_norm)
    if t.on_step is not None:
        t.on_step(t.model)
    t.opt.step()
    return seen


def validate(
    model: nn.Module, data: TrainData, device: str, spec: TransformSpec
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
