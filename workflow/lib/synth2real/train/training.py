"""Train a classifier on one dataset's shards, with either recipe and safe resumption.

Design points:
- The recipe comes from config (``train``), so the same function trains the demo's small CNN
  and the paper's ResNet-50. ``recipe: paper`` is the paper's text; ``recipe: official`` adds
  what the official code really does (CutMix, gradient clipping, its augmentation lists, its
  warm-up start and cosine floor); :func:`synth2real.train.recipe.resolve_recipe` turns config
  into a :class:`~synth2real.train.recipe.Recipe`.
- Every epoch ends with an atomic checkpoint. A killed job (preemption, ``scancel``) resumes
  from its last finished epoch. All randomness of an epoch (shuffle order, per-image
  augmentation, CutMix, dropout) is seeded from (seed, epoch[, step or image]), so a resumed
  run ends with the same weights as an uninterrupted one, whatever the loader's worker count.
- Model selection uses the lowest validation loss on the *training domain's* val split (the
  paper's rule), never the real test split.
- Two input paths. Small splits (the demo) are decoded into memory and augmented per batch
  (the historical path; its numbers are unchanged). Large splits (the paper: 19.7 GB decoded
  per 100k-image split) stream through a DataLoader with workers over the Parquet shards, or
  over a node-local decoded cache (:func:`synth2real.train.loader.build_decoded_cache`).
  See :mod:`synth2real.train.data`.
- Several GPUs: :func:`synth2real.train.ddp.launch_distributed` re-runs the job under
  ``torchrun``; each rank takes its share of every *global* batch (so the effective batch
  stays ``batch_size``), and only rank 0 writes checkpoints and outputs.

Layout of the stage: :mod:`~synth2real.train.recipe` (what to train with),
:mod:`~synth2real.train.data` (input paths), :mod:`~synth2real.train.loop` (epoch, validation),
:mod:`~synth2real.train.checkpoint` (files), :mod:`~synth2real.train.ddp` (several GPUs); this
module composes them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from synth2real.evaluate.predict import autocast
from synth2real.seeding import derive_seed
from synth2real.train.architectures import build_model
from synth2real.train.augment import cutmix
from synth2real.train.checkpoint import save_atomic, write_history
from synth2real.train.data import MemoryData, StreamData, check_input_size
from synth2real.train.ddp import rank_world
from synth2real.train.loop import validate
from synth2real.train.recipe import Recipe, Runtime, lr_factor, make_optimizer


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
    runtime: Runtime | None = None,
    on_step: Callable[[nn.Module], None] | None = None,
) -> dict[str, Any]:
    """Train ``arch`` and write the best-val-loss weights to ``model_path``.

    ``stop_after_epoch`` ends the run early as if the job had been killed then (tests use it to
    check that resuming reproduces an uninterrupted run). ``on_step(model)`` is called after
    gradient clipping, just before each optimiser step (tests read gradients there). Inside a
    ``torchrun`` process group the job is one rank of a DDP run. Returns the best epoch's record.
    """
    runtime = runtime or Runtime()
    rank, world = rank_world()
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    spec = recipe.transform_spec()
    check_input_size(spec, train_shards)
    in_memory = (
        world == 1
        and spec.augment == "paper"
        and spec.input_size is None
        and runtime.mode(train_shards) == "memory"
    )
    data: StreamData | MemoryData = (
        MemoryData(train_shards, val_shards, recipe)
        if in_memory
        else StreamData(train_shards, val_shards, recipe, runtime, device, rank, world)
    )
    if data.labels_max >= num_classes:
        raise ValueError(f"labels exceed num_classes={num_classes}")
    fingerprint = recipe.fingerprint(arch, num_classes)
    torch.manual_seed(derive_seed(recipe.seed, "init"))
    model = build_model(arch, num_classes, **recipe.arch_kwargs).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, recipe)
    micro = recipe.micro_batch or recipe.batch_size
    steps_per_epoch = data.steps_per_epoch
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

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None
        )
    forward = torch.compile(net) if runtime.compile else net

    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(derive_seed(recipe.seed, "epoch", epoch, *([rank] if rank else [])))
        gen = torch.Generator().manual_seed(derive_seed(recipe.seed, "shuffle", epoch))
        model.train()
        total_loss_t = torch.zeros((), dtype=torch.float64, device=device)
        seen = 0
        batches = data.epoch(epoch, gen)
        for step, (x_step, y_step, global_len) in enumerate(
            tqdm(
                batches,
                total=steps_per_epoch,
                desc=f"epoch {epoch + 1}/{recipe.epochs}",
                mininterval=10,
                leave=False,
                disable=rank != 0,
            )
        ):
            for g in opt.param_groups:
                g["lr"] = recipe.lr * lr_factor(
                    epoch * steps_per_epoch + step, steps_per_epoch, recipe
                )
            # The whole step's input goes to the device first, so CutMix runs there (on a
            # 1024 x 3 x 224 x 224 batch a CPU copy would cost the main process ~0.2 s).
            x_step = x_step.to(device, non_blocking=True)
            y_step = y_step.to(device, non_blocking=True)
            target: torch.Tensor = y_step
            if recipe.cutmix_alpha > 0:
                rng = np.random.default_rng(derive_seed(recipe.seed, "cutmix", epoch, step, rank))
                if rng.random() < recipe.cutmix_p:
                    x_step, target, _ = cutmix(
                        x_step, y_step, num_classes, recipe.cutmix_alpha, rng
                    )
            opt.zero_grad(set_to_none=True)
            pieces = list(zip(x_step.split(micro), target.split(micro), strict=True))
            for i, (x, t) in enumerate(pieces):
                if device.startswith("cuda"):
                    x = x.contiguous(memory_format=torch.channels_last)
                last = i == len(pieces) - 1
                # DDP all-reduces gradients only on the last micro-batch of a step.
                with nullcontext() if last or world == 1 else net.no_sync():  # type: ignore[operator]
                    with autocast(device):
                        loss = F.cross_entropy(
                            forward(x), t, label_smoothing=recipe.label_smoothing
                        )
                    # Mean over the *global* batch; DDP averages ranks, hence * world.
                    (loss * len(x) / global_len * world).backward()
                # Summed on the device in float64 (= the float sum of .item()s), read once per
                # epoch: no host sync per step.
                total_loss_t += loss.detach().double() * len(x)
                seen += len(x)
            if recipe.grad_clip_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
            if on_step is not None:
                on_step(model)
            opt.step()
        total_loss = float(total_loss_t)
        if world > 1:
            sums = torch.tensor([total_loss, seen], dtype=torch.float64)
            dist.all_reduce(sums)
            total_loss, seen = float(sums[0]), int(sums[1])
        val_loss, val_acc = validate(model, data, device, spec)
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / seen,
            "val_loss": val_loss,
            "val_top1": val_acc,
            "seconds": time.perf_counter() - t0,
            "images_per_s": seen / (time.perf_counter() - t0),
        }
        history.append(record)
        if rank == 0:
            print(json.dumps(record), flush=True)
        if val_loss < best["val_loss"]:
            best = dict(record)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if ckpt_path and rank == 0:
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

    if rank == 0:
        meta = {
            "arch": arch,
            "num_classes": num_classes,
            "arch_kwargs": recipe.arch_kwargs,
            "transform": asdict(spec),
        }
        save_atomic({"meta": meta, "state_dict": best_state, "best": best}, model_path)
        write_history(history, history_path)
        if ckpt_path:
            ckpt_path.unlink(missing_ok=True)  # finished: the model file supersedes it
    return best
