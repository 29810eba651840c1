"""What to train with: the :class:`Recipe` (fingerprinted), the :class:`Runtime` (how to run,
never fingerprinted), the ``paper``/``official`` presets and the learning-rate schedule.

:func:`resolve_recipe` turns the config's ``train`` section into both: ``recipe: paper`` is the
paper's text; ``recipe: official`` adds what the official code really does (CutMix, gradient
clipping, its augmentation lists, its warm-up start and cosine floor).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synth2real.train.augment import TransformSpec
from synth2real.train.loader import first_image, split_rows


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
        image = first_image(shards)  # its dtype too: a 16-bit view takes twice the memory
        decoded_mb = split_rows(shards) * image.nbytes / 1e6
        return "memory" if decoded_mb <= self.memory_limit_mb else "stream"

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


#: The official code's stochastic depth (torchvision's ImageNet defaults: ``convnext_tiny``
#: 0.1, ``swin_t`` 0.2, both rising linearly over the blocks as timm's ``drop_path_rate`` does).
#: ``recipe: paper`` keeps timm's defaults (0 and 0.1); ``architectures.<arch>`` still wins.
OFFICIAL_ARCH_KWARGS: dict[str, dict[str, Any]] = {
    "convnext_tiny": {"drop_path_rate": 0.1},
    "swin_tiny": {"drop_path_rate": 0.2},
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
        arch_kwargs = {**OFFICIAL_ARCH_KWARGS.get(arch, {}), **(arch_kwargs or {})}
    elif name != "paper":
        raise ValueError(f"unknown train.recipe {name!r}; use paper or official")
    values = {**preset, **{k: v for k, v in cfg.items() if v is not None}}
    recipe = Recipe(**values, recipe=name, seed=seed, arch_kwargs=dict(arch_kwargs or {}))
    recipe.transform_spec()  # validates augment/normalize/input_size now, not mid-job
    return recipe, runtime


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
