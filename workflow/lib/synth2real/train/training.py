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

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synth2real.seeding import derive_seed
from synth2real.train.architectures import build_model
from synth2real.train.checkpoint import (
    load_resume_state,
    save_checkpoint,
    save_model,
    write_history,
)
from synth2real.train.data import open_data
from synth2real.train.ddp import rank_device, rank_world, wrap_ddp
from synth2real.train.loop import Trainer, run_epoch
from synth2real.train.recipe import Recipe, Runtime, make_optimizer


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
    device = rank_device(device, world)
    spec = recipe.transform_spec()
    data = open_data(train_shards, val_shards, recipe, runtime, device, rank, world)
    if data.labels_max >= num_classes:
        raise ValueError(f"labels exceed num_classes={num_classes}")
    fingerprint = recipe.fingerprint(arch, num_classes)
    model = _init_model(arch, num_classes, recipe, device)
    opt = make_optimizer(model, recipe)
    ckpt_path = Path(checkpoint_path) if checkpoint_path else None
    state = load_resume_state(ckpt_path, fingerprint, model, opt, device)
    net = wrap_ddp(model, device, world)
    forward = torch.compile(net) if runtime.compile else net
    trainer = Trainer(model, net, forward, opt, recipe, num_classes, device, rank, world, on_step)

    for epoch in range(state.start_epoch, recipe.epochs):
        state.add(run_epoch(trainer, data, epoch, spec), model)
        if ckpt_path and rank == 0:
            save_checkpoint(ckpt_path, fingerprint, epoch, model, opt, state)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            return state.best

    if rank == 0:
        save_model(model_path, arch, num_classes, recipe, spec, state)
        write_history(state.history, history_path)
        if ckpt_path:
            ckpt_path.unlink(missing_ok=True)  # finished: the model file supersedes it
    return state.best


def _init_model(arch: str, num_classes: int, recipe: Recipe, device: str) -> nn.Module:
    """A freshly initialised model, seeded from the recipe (channels-last on CUDA)."""
    torch.manual_seed(derive_seed(recipe.seed, "init"))
    model = build_model(arch, num_classes, **recipe.arch_kwargs).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model
