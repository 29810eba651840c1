"""The two input paths of training, each an object with ``epoch(epoch, gen)`` batches.

- :class:`MemoryData`: small splits (the demo) decoded into memory and augmented per batch
  (the historical path; its numbers are unchanged).
- :class:`StreamData`: large splits (the paper: 19.7 GB decoded per 100k-image split) stream
  through a DataLoader with workers over the Parquet shards, or over a node-local decoded cache
  (:func:`synth2real.train.loader.build_decoded_cache`); DDP-aware batches.

The Datasets, the cache and the sampler themselves live in :mod:`synth2real.train.loader`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from synth2real.shards import load_split
from synth2real.train.augment import (
    SeededTransform,
    TransformSpec,
    eval_transform,
    normalize,
    to_unit,
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
)
from synth2real.train.recipe import Recipe, Runtime


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8/uint16 (N, H, W, 3) -> float (N, 3, H, W) under the paper normalisation, the one
    implementation of which lives in :func:`synth2real.train.augment.normalize`."""
    return normalize(to_unit(images.permute(0, 3, 1, 2)), "paper")


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


class StreamData:
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


class MemoryData:
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


def check_input_size(spec: TransformSpec, shards: Sequence[str]) -> None:
    """The paper path crops ``input_size`` out of the stored image: it must fit (the official
    lists resize, so any size works there)."""
    if spec.augment != "paper" or spec.input_size is None:
        return
    h, w = first_image_shape(shards)
    if spec.input_size > min(h, w):
        raise ValueError(
            f"train.input_size={spec.input_size} is larger than the {h}x{w} images of "
            f"{shards[0]}; set input_size to at most {min(h, w)} or null (whole image)"
        )


#: Either input path: both give ``epoch(epoch, gen)`` batches, ``steps_per_epoch`` and
#: ``labels_max``.
TrainData = StreamData | MemoryData


def open_data(
    train_shards: Sequence[str],
    val_shards: Sequence[str],
    recipe: Recipe,
    runtime: Runtime,
    device: str,
    rank: int,
    world: int,
) -> TrainData:
    """The input path of a job. In memory only where it reproduces the historical numbers (one
    process, paper augmentation of whole images, a split that fits :class:`Runtime`'s limit);
    everything else streams."""
    spec = recipe.transform_spec()
    check_input_size(spec, train_shards)
    in_memory = (
        world == 1
        and spec.augment == "paper"
        and spec.input_size is None
        and runtime.mode(train_shards) == "memory"
    )
    if in_memory:
        return MemoryData(train_shards, val_shards, recipe)
    return StreamData(train_shards, val_shards, recipe, runtime, device, rank, world)
