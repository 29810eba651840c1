"""Train- and eval-time image transforms of both recipes, and CutMix.

Two recipes exist (see docs/training.md): ``paper`` (what the paper's text says: a small
translation + flip, or nothing) and ``official`` (what ``classifier/dataset.py`` of the official
code really does). The official lists are rebuilt here from torchvision v2 ops; the choices we
made differently are listed in docs/training.md.

Why the train transforms are *per image and seeded by (seed, epoch, image index)*: a
DataLoader with workers hands images to processes in an order we do not control, so a
worker-local RNG would make a run depend on the worker count and on scheduling. Seeding each
image from its own key makes the augmented batch the same with 0, 1 or 16 workers, on one GPU
or under DDP, and on a resumed run. The global torch RNG is restored after each image
(``fork_rng``), so in-process loading (workers 0) does not disturb dropout.

Eval transforms are deterministic and run on whole uint8 batches (N, H, W, 3). Images may also
be uint16 (16-bit frequency probe views): :func:`to_unit` scales either dtype to [0, 1], and a
uint16 image is made float before any resampling (torchvision's uint16 resize wraps its
overshoot around instead of clamping it).

torchvision is imported only where its ops are used (:func:`_tv`): importing it costs a job
about 2 s (it pulls in ``torch._dynamo``), and the paper path's full-image eval transform, the
in-memory training path and every evaluation and feature job of the demo never need it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

from synth2real.seeding import derive_seed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_MEAN, PAPER_STD = 0.5, 0.25
AUGMENTS = ("paper", "official_rgb", "official_depth", "official_band", "official_texture")
NORMALIZE = ("paper", "imagenet")


def _tv() -> tuple[ModuleType, ModuleType, Any]:
    """torchvision's ``v2`` transforms, its functional ops and bicubic interpolation, imported
    on first use (see the module docstring)."""
    from torchvision.transforms import InterpolationMode, v2
    from torchvision.transforms.v2 import functional as tf

    return v2, tf, InterpolationMode.BICUBIC


@dataclass(frozen=True)
class TransformSpec:
    """Everything that decides the train and eval transforms (stored with a trained model).

    ``augment``: ``paper`` = optional pad-and-crop translation (``crop_padding``) and flip;
    ``official_rgb|depth|band|texture`` = the official code's lists per data type.
    ``input_size``: side of the network input; ``None`` = the stored image as it is.
    ``normalize``: ``paper`` = (x - 0.5) / 0.25, ``imagenet`` = ImageNet mean/std.
    """

    augment: str = "paper"
    input_size: int | None = None
    normalize: str = "paper"
    crop_padding: int = 0
    hflip: bool = True

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise ValueError(f"unknown augment {self.augment!r}; use one of {AUGMENTS}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {self.normalize!r}; use one of {NORMALIZE}")
        if self.augment.startswith("official") and self.input_size is None:
            raise ValueError(f"augment {self.augment!r} needs an input_size (official: 224/128)")


def normalize(x: torch.Tensor, how: str) -> torch.Tensor:
    """Float [0, 1] (…, 3, H, W) -> network input."""
    if how == "paper":
        return (x - PAPER_MEAN) / PAPER_STD
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Stored pixels -> float in [0, 1]: uint8 / 255, uint16 / 65535; floats pass unchanged.

    The one conversion of every input path (train, eval, the in-memory path), so an 8-bit and
    a 16-bit view of the same band reach the network on the same scale.
    """
    if x.is_floating_point():
        return x
    if x.dtype not in (torch.uint8, torch.uint16):
        raise TypeError(f"stored pixels are uint8 or uint16, got {x.dtype}")
    return x.float() / float(torch.iinfo(x.dtype).max)


def minmax_per_channel(x: torch.Tensor) -> torch.Tensor:
    """Rescale each channel of each image to [0, 1], as the official code does for band-pass
    inputs (it stores float bands; ours are 16-bit by default, offset by mid-grey for the
    radial high-pass)."""
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return (x - lo) / (hi - lo + 1e-8)


def train_transform(spec: TransformSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 or uint16 (3, H, W) -> float (3, S, S), drawing from the global torch RNG.

    Geometry (crops, flips) runs on uint8, colour on float in [0, 1] as in the official code.
    Cropping uint8 instead of float rounds the bicubic result to 8 bits and clamps its
    overshoot: a documented, negligible difference that roughly halves the cost per image.
    uint16 images (16-bit probe views) are made float first, so all their geometry is float.
    """
    size = spec.input_size
    v2, _, BICUBIC = _tv()
    ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if spec.augment == "paper":
        if spec.crop_padding:
            ops.append(_PadCrop(spec.crop_padding))
        if size is not None:
            ops.append(v2.RandomCrop(size))
        if spec.hflip:
            ops.append(v2.RandomHorizontalFlip())
        ops.append(to_unit)
    elif spec.augment == "official_rgb":
        ops += [
            v2.RandomResizedCrop(size, interpolation=BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
            to_unit,
            v2.RandomChoice(
                [
                    v2.Grayscale(num_output_channels=3),
                    v2.RandomSolarize(threshold=0.5, p=1.0),
                    v2.GaussianBlur(kernel_size=7, sigma=(0.2, 2.0)),
                ]
            ),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
        ]
    elif spec.augment == "official_depth":
        ops += [
            v2.RandomResizedCrop(size, interpolation=BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
            to_unit,
        ]
    elif spec.augment == "official_band":
        ops += [
            to_unit,
            minmax_per_channel,
            v2.RandomResizedCrop(size, interpolation=BICUBIC, antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    else:  # official_texture: BagNet sees 128 px crops of the 256 px image
        ops += [
            v2.Resize(256, interpolation=BICUBIC, antialias=True),
            v2.RandomCrop(size),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            to_unit,
        ]
    how = spec.normalize

    def apply(x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            x = to_unit(x)
        for op in ops:
            x = op(x)
        return normalize(x, how)

    return apply


class _PadCrop:
    """Random translation by up to ``p`` pixels, edge-replicating (the paper recipe's
    ``crop_padding``), on one image (uint8, or float for 16-bit views)."""

    def __init__(self, p: int) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x[None].float(), (self.p,) * 4, mode="replicate")[0]
        dy, dx = (int(v) for v in torch.randint(0, 2 * self.p + 1, (2,)))
        return padded[:, dy : dy + h, dx : dx + w].to(x.dtype)


def eval_transform(spec: TransformSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 or uint16 batch (N, H, W, 3) -> float (N, 3, S, S); deterministic.

    ``paper`` with no input_size is exactly the historical ``(x / 255 - 0.5) / 0.25``.
    Official RGB/depth/band: Resize(S, bicubic) + CenterCrop(S). Official texture: the official
    code takes a *random* 128 crop at test time too (unseeded); we take the centre crop, so a
    model's test accuracy is one number.
    """
    size = spec.input_size
    needs_tv = spec.augment.startswith("official") or size is not None
    _, TF, BICUBIC = _tv() if needs_tv else (None, None, None)

    def apply(images: torch.Tensor) -> torch.Tensor:
        x = to_unit(images.permute(0, 3, 1, 2))
        if spec.augment == "official_band":
            x = minmax_per_channel(x)
        if spec.augment == "official_texture":
            x = TF.center_crop(TF.resize(x, [256], interpolation=BICUBIC, antialias=True), [size])
        elif spec.augment.startswith("official"):
            x = TF.resize(x, [size], interpolation=BICUBIC, antialias=True)
            x = TF.center_crop(x, [size])
        elif size is not None:
            x = TF.center_crop(x, [size])
        return normalize(x, spec.normalize)

    return apply


class SeededTransform:
    """Apply a random transform with the torch RNG seeded from (seed, *key); restores the
    global RNG afterwards. Picklable, so DataLoader workers can carry it."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], seed: int) -> None:
        self.transform, self.seed = transform, seed

    def __call__(self, image: torch.Tensor, *key: object) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "augment", *key))
            return self.transform(image)


def cutmix(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix one batch as torchvision's ``v2.CutMix`` does; returns (images, soft labels, λ).

    λ ~ Beta(α, α); a box of side √(1-λ)·(H, W) centred at a uniform pixel (clipped at the
    border) is pasted from the batch rolled by one; the labels mix by the *pasted area*
    (λ' = 1 - box area / image area). Drawn from ``rng`` (seeded per step by the caller), not
    from the global RNG, so it is reproducible and resumable.
    """
    h, w = x.shape[-2:]
    lam = float(rng.beta(alpha, alpha))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    half = 0.5 * math.sqrt(1.0 - lam)
    rh, rw = int(half * h), int(half * w)
    y0, y1 = max(cy - rh, 0), min(cy + rh, h)
    x0, x1 = max(cx - rw, 0), min(cx + rw, w)
    mixed = x.clone()
    mixed[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1].roll(1, 0)  # roll only the box
    lam_area = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    one_hot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    soft = one_hot * lam_area + one_hot.roll(1, 0) * (1.0 - lam_area)
    return mixed, soft, lam_area
