"""Train a classifier on one dataset's shards, with either recipe and safe resumption.

Design points:
- The recipe comes from config (``train``), so the same function trains the demo's small CNN
  and the paper's ResNet-50. ``recipe: paper`` is the paper's text; ``recipe: official`` adds
  what the official code really does (CutMix, gradient clipping, its augmentation lists, its
  warm-up start and cosine floor); :func:`resolve_recipe` turns config into a :class:`Recipe`.
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
- Several GPUs: :func:`launch_distributed` re-runs the job under ``torchrun``; each rank takes
  its share of every *global* batch (so the effective batch stays ``batch_size``), and only
  rank 0 writes checkpoints and outputs.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from synth2real.io import atomic_output
from synth2real.seeding import derive_seed
from synth2real.shards import load_split
from synth2real.train.architectures import build_model
from synth2real.train.augment import (
    SeededTransform,
    TransformSpec,
    cutmix,
    eval_transform,
    train_transform,
)
from synth2real.train.loader import (
    AugmentedDataset,
    DecodedCacheDataset,
    EpochBatchSampler,
    MemorySource,
    ShardImageDataset,
    build_decoded_cache,
    first_image_shape,
    split_rows,
)

MEAN, STD = 0.5, 0.25


@dataclass
class Recipe:
    """Training hyper-parameters; field names are the config keys under ``train``.

    Every field is part of the checkpoint fingerprint. Defaults are the paper recipe;
    :data:`OFFICIAL` lists what ``recipe: official`` changes.
    """

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
    recipe: str = "paper"
    augment: str = "paper"
    input_size: int | None = None
    normalize: str = "paper"
    cutmix_alpha: float = 0.0  # 0 = off
    cutmix_p: float = 1.0
    grad_clip_norm: float = 0.0  # 0 = off
    warmup_start_factor: float | None = None  # None = the paper path's (step + 1) / warm
    min_lr_factor: float = 0.0

    def fingerprint(self, arch: str, num_classes: int) -> str:
        """Hash of all that shapes the result; a checkpoint of another recipe is ignored."""
        blob = json.dumps({"arch": arch, "classes": num_classes, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def transform_spec(self) -> TransformSpec:
        return TransformSpec(
            augment=self.augment,
            input_size=self.input_size,
            normalize=self.normalize,
            crop_padding=self.crop_padding,
            hflip=self.hflip,
        )


@dataclass
class Runtime:
    """How to run, not what to compute: none of it changes the result, so none of it is in
    the fingerprint (a job may resume with more workers or with compilation switched on).

    ``loader``: ``memory`` decodes whole splits into RAM; ``stream`` reads shards through a
    DataLoader; ``auto`` streams when a split would take more than ``memory_limit_mb`` decoded.
    ``decoded_cache``: directory of node-local decoded copies (``auto`` = ``$TMPDIR`` or /tmp).
    """

    loader: str = "auto"
    workers: int = 0
    memory_limit_mb: int = 4096
    decoded_cache: str | None = None
    compile: bool = False

    def mode(self, shards: Sequence[str]) -> str:
        if self.loader != "auto":
            return self.loader
        h, w = first_image_shape(shards)
        return (
            "memory" if split_rows(shards) * h * w * 3 / 1e6 <= self.memory_limit_mb else "stream"
        )

    def cache_dir(self) -> str | None:
        if self.decoded_cache == "auto":
            return str(Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "synth2real-decoded")
        return self.decoded_cache


#: What ``recipe: official`` sets (explicit config keys still win); augment and input size
#: depend on the probe and architecture, see :func:`official_augment`.
OFFICIAL: dict[str, Any] = {
    "normalize": "imagenet",
    "cutmix_alpha": 1.0,
    "cutmix_p": 1.0,
    "grad_clip_norm": 1.0,
    "warmup_start_factor": 1e-5,
    "min_lr_factor": 1e-8,
}
RUNTIME_KEYS = {
    "loader": "loader",
    "loader_workers": "workers",
    "memory_limit_mb": "memory_limit_mb",
    "decoded_cache": "decoded_cache",
    "compile": "compile",
}


def official_augment(probe_transform: str, arch: str) -> tuple[str, int]:
    """(augment, input size) of the official code for a probe view and architecture."""
    if arch.startswith("bagnet"):
        return "official_texture", 128
    if probe_transform in ("lowpass", "highpass"):
        return "official_band", 224
    if probe_transform == "depth":
        return "official_depth", 224
    return "official_rgb", 224


def resolve_recipe(
    train: dict[str, Any],
    probe_transform: str,
    arch: str,
    seed: int,
    arch_kwargs: dict[str, Any] | None = None,
) -> tuple[Recipe, Runtime]:
    """Config ``train`` section -> (Recipe, Runtime). ``null`` values mean "the recipe's
    choice": the paper's defaults, or :data:`OFFICIAL` plus :func:`official_augment`."""
    cfg = dict(train)
    name = cfg.pop("recipe", "paper")
    runtime = Runtime(
        **{attr: cfg.pop(key) for key, attr in RUNTIME_KEYS.items() if cfg.get(key) is not None}
    )
    for key in RUNTIME_KEYS:
        cfg.pop(key, None)
    preset: dict[str, Any] = {}
    if name == "official":
        augment, size = official_augment(probe_transform, arch)
        preset = {**OFFICIAL, "augment": augment, "input_size": size}
    elif name != "paper":
        raise ValueError(f"unknown train.recipe {name!r}; use paper or official")
    values = {**preset, **{k: v for k, v in cfg.items() if v is not None}}
    recipe = Recipe(**values, recipe=name, seed=seed, arch_kwargs=dict(arch_kwargs or {}))
    recipe.transform_spec()  # validates augment/normalize/input_size now, not mid-job
    return recipe, runtime


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W)."""
    return (images.permute(0, 3, 1, 2).float() / 255.0 - MEAN) / STD


def augment(x: torch.Tensor, recipe: Recipe, gen: torch.Generator) -> torch.Tensor:
    """Random translation (pad + crop) and optional horizontal flip, drawn from ``gen``
    (the in-memory paper path; the streaming path uses :mod:`synth2real.train.augment`)."""
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
    """Linear warm-up over ``warmup_epochs``, then cosine decay (to ``min_lr_factor``).

    Paper path (``warmup_start_factor`` None): (step + 1) / warm. Official: from the start
    factor s at step 0, s + (1 - s) * step / warm, as its LambdaLR does.
    """
    warm = recipe.warmup_epochs * steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    if step < warm:
        if recipe.warmup_start_factor is None:
            return (step + 1) / warm
        s = recipe.warmup_start_factor
        return s + (1.0 - s) * step / warm
    progress = (step - warm) / max(1, total - warm)
    return max(recipe.min_lr_factor, 0.5 * (1.0 + math.cos(math.pi * progress)))


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


def _autocast(device: str) -> torch.autocast:
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

    ``transform``: the model's eval transform (:func:`load_eval_transform`); default
    :func:`to_input`, the paper path's full-image input.
    """
    transform = transform or to_input
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = transform(images[start : start + batch_size]).to(device)
        with _autocast(device):
            out.append(model(x).float().cpu())
    return torch.cat(out)


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _EvalDataset(Dataset):
    """index -> (eval-transformed image, label): lets loader workers run the eval resize."""

    def __init__(self, source: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.source[index]
        return self.transform(image.permute(1, 2, 0)[None])[0], label


def _source(shards: Sequence[str], runtime: Runtime, rank: int) -> Dataset:
    """A split as index -> (uint8 CHW, label): in memory, decoded cache, or Parquet bytes."""
    if runtime.mode(shards) == "memory":
        x, y = load_split(shards)
        return MemorySource(torch.from_numpy(x), torch.from_numpy(y))
    cache = runtime.cache_dir()
    if cache:
        if rank == 0:  # one rank per node decodes; the others then find the entry
            build_decoded_cache(shards, cache, workers=runtime.workers)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        return DecodedCacheDataset(build_decoded_cache(shards, cache, workers=runtime.workers))
    return ShardImageDataset(shards)


def _loader(dataset: Dataset, runtime: Runtime, device: str, **kwargs: Any) -> DataLoader:
    w = runtime.workers
    return DataLoader(
        dataset,
        num_workers=w,
        pin_memory=device.startswith("cuda"),
        persistent_workers=w > 0,
        prefetch_factor=2 if w > 0 else None,  # batch 1024 at 224 px = 616 MB in shm
        # Its own generator: otherwise each new or reset iterator draws worker seeds from the
        # global RNG, and dropout would depend on the worker count (augmentation is seeded per
        # image and needs no worker seed).
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    )


class _StreamData:
    """The DataLoader path: seeded per-image augmentation, DDP-aware batches."""

    def __init__(
        self,
        train_shards: Sequence[str],
        val_shards: Sequence[str],
        recipe: Recipe,
        runtime: Runtime,
        device: str,
        rank: int,
        world: int,
    ) -> None:
        spec = recipe.transform_spec()
        train = _source(train_shards, runtime, rank)
        val = _source(val_shards, runtime, rank)
        self.labels_max = max(int(train.labels().max()), int(val.labels().max()))  # type: ignore[attr-defined]
        self.n_train, self.n_val = len(train), len(val)  # type: ignore[arg-type]
        self.sampler = EpochBatchSampler(self.n_train, recipe.batch_size, recipe.seed, rank, world)
        augmented = AugmentedDataset(train, SeededTransform(train_transform(spec), recipe.seed))
        self.train = _loader(augmented, runtime, device, batch_sampler=self.sampler)
        val_part = Subset(_EvalDataset(val, eval_transform(spec)), range(rank, self.n_val, world))
        self.val = _loader(val_part, runtime, device, batch_size=min(recipe.batch_size, 512))
        self.steps_per_epoch = len(self.sampler)

    def epoch(
        self, epoch: int, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        self.sampler.set_epoch(epoch)
        lens = [len(b) for b in self.sampler.global_batches()]
        for (x, y), n in zip(self.train, lens, strict=True):
            yield x, y, n


class _MemoryData:
    """The historical in-memory path (paper augmentation on whole batches); demo numbers."""

    def __init__(self, train_shards: Sequence[str], val_shards: Sequence[str], recipe: Recipe):
        self.x_train, self.y_train = (torch.from_numpy(a) for a in load_split(train_shards))
        self.x_val, self.y_val = (torch.from_numpy(a) for a in load_split(val_shards))
        self.labels_max = max(int(self.y_train.max()), int(self.y_val.max()))
        self.n_train = len(self.x_train)
        self.recipe = recipe
        self.steps_per_epoch = math.ceil(self.n_train / recipe.batch_size)

    def epoch(
        self, epoch: int, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        b = self.recipe.batch_size
        micro = self.recipe.micro_batch or b
        order = torch.randperm(self.n_train, generator=gen)
        for step in range(self.steps_per_epoch):
            idx = order[step * b : (step + 1) * b]
            # Augmented per micro-batch, in order: the same draws from ``gen`` as ever.
            x = torch.cat(
                [augment(to_input(self.x_train[s]), self.recipe, gen) for s in idx.split(micro)]
            )
            yield x, self.y_train[idx], len(idx)


def _validate(
    model: nn.Module, data: _StreamData | _MemoryData, device: str, spec: TransformSpec
) -> tuple[float, float]:
    """(val loss, val top-1) over the whole val split, summed across ranks."""
    if isinstance(data, _MemoryData):
        logits = predict(model, data.x_val, device=device, transform=eval_transform(spec))
        return F.cross_entropy(logits, data.y_val).item(), (
            logits.argmax(1) == data.y_val
        ).float().mean().item()
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for x, y in data.val:
            with _autocast(device):
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


def _check_input_size(spec: TransformSpec, shards: Sequence[str]) -> None:
    """The paper path crops ``input_size`` out of the stored image: it must fit (the official
    lists resize, so any size works there)."""
    if spec.augment != "paper" or spec.input_size is None:
        return
    h, w = first_image_shape(shards)
    if spec.input_size > min(h, w):
        raise ValueError(
            f"train.input_size={spec.input_size} is larger than the {h}x{w} images of "
            f"{shards[0]}; set input_size to at most {min(h, w)} or null (whole image). "
            "Configs extend config/config.yaml, whose input_size is 224."
        )


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
    rank, world = _rank_world()
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    spec = recipe.transform_spec()
    _check_input_size(spec, train_shards)
    in_memory = (
        world == 1
        and spec.augment == "paper"
        and spec.input_size is None
        and runtime.mode(train_shards) == "memory"
    )
    data: _StreamData | _MemoryData = (
        _MemoryData(train_shards, val_shards, recipe)
        if in_memory
        else _StreamData(train_shards, val_shards, recipe, runtime, device, rank, world)
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
                    with _autocast(device):
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
        val_loss, val_acc = _validate(model, data, device, spec)
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


def launch_distributed(nproc: int, job: dict[str, Any]) -> None:
    """Run ``train_classifier(**job)`` as ``nproc`` DDP ranks under ``torchrun``.

    Why a re-launch: a Snakemake script is one process, but DDP wants one process per GPU
    with a rendezvous; ``torchrun --standalone`` provides both on one node. The job is passed
    as a pickled dict in a temp file; backend NCCL on CUDA, gloo on CPU (tests).
    """
    lib = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="synth2real-ddp-") as tmp:
        spec = Path(tmp) / "job.pt"
        torch.save(job, spec)
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "synth2real.train.ddp_rank", str(spec),
        ]  # fmt: skip
        print("launching:", " ".join(cmd), flush=True)
        out = _fileno(sys.stdout)
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=_fileno(sys.stderr) or out)
        if proc.returncode:
            raise RuntimeError(f"torchrun with {nproc} processes failed (exit {proc.returncode})")


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def distributed_main(spec_path: str) -> None:
    """One torchrun rank: join the process group and train (see :func:`launch_distributed`)."""
    job = torch.load(spec_path, weights_only=False)
    backend = "nccl" if str(job.get("device", "cpu")).startswith("cuda") else "gloo"
    # An hour, not NCCL's 10 minutes: the other ranks wait at a barrier while rank 0 builds
    # the decoded cache of a 100k-image split.
    dist.init_process_group(backend, timeout=datetime.timedelta(hours=1))
    try:
        train_classifier(**job)
    finally:
        dist.destroy_process_group()


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
    """Rebuild a trained classifier from the file :func:`train_classifier` wrote."""
    blob = torch.load(model_path, map_location=device, weights_only=False)
    meta = blob["meta"]
    model = build_model(meta["arch"], meta["num_classes"], **meta["arch_kwargs"])
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval()


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    device: str = "cpu",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Top-1, top-5 and per-class accuracy on uint8 images (``transform``: the model's eval
    transform, :func:`load_eval_transform`)."""
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
