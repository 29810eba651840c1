"""A small class-conditional diffusion model: the demo's stand-in for a text-to-image model.

It is a diffusers ``UNet2DModel`` with a class embedding, trained on the real train split
inside the workflow and sampled with a DDIM scheduler at several classifier-free guidance (CFG)
scales. Each scale is one "generator" of the grid, which asks the paper's question at laptop
size: does the generator whose samples look cleaner (high guidance) make worse training data?

Class ``num_classes`` (one past the last real class) is the null label used for CFG: during
training a fraction of labels is dropped to it, so one network learns both the conditional
and the unconditional score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from tqdm.auto import tqdm

from synth2real.data.digits import upscale_float


def build_unet(num_classes: int, sample_size: int = 8, width: int = 32) -> UNet2DModel:
    """A tiny UNet for 1-channel 8x8 digits; +1 class embedding for the CFG null label."""
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(width, width * 2),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        num_class_embeds=num_classes + 1,
        norm_num_groups=8,
        attention_head_dim=8,
    )


def train_ddpm(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    out_dir: str | Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    width: int,
    train_timesteps: int,
    cond_drop: float,
    seed: int,
) -> dict[str, float]:
    """Train the UNet with the standard epsilon objective and save a diffusers model dir.

    ``images`` are (N, 8, 8) in [0, 1]; they are scaled to [-1, 1] as DDPM expects. The model
    and its scheduler are written with ``save_pretrained`` so sampling loads them back through
    the same ``from_pretrained`` path a hub model would take.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.as_tensor(images, dtype=torch.float32)[:, None] * 2 - 1
    y_all = torch.as_tensor(labels, dtype=torch.long)
    model = build_unet(num_classes, images.shape[-1], width)
    scheduler = DDPMScheduler(
        num_train_timesteps=train_timesteps, beta_schedule="squaredcos_cap_v2"
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    model.train()
    start = time.perf_counter()
    losses: list[float] = []
    for _ in tqdm(range(steps), desc="train ddpm", mininterval=5):
        idx = torch.randint(0, len(x_all), (batch_size,), generator=gen)
        x0, y = x_all[idx], y_all[idx].clone()
        y[torch.rand(batch_size, generator=gen) < cond_drop] = num_classes
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, train_timesteps, (batch_size,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model(xt, t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir / "unet")
    scheduler.save_pretrained(out_dir / "scheduler")
    return {
        "seconds": time.perf_counter() - start,
        "final_loss": float(np.mean(losses[-50:])),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def load_ddpm(model_dir: str | Path) -> tuple[UNet2DModel, DDIMScheduler]:
    """Load the trained UNet and a DDIM scheduler built from its training schedule."""
    model_dir = Path(model_dir)
    unet = UNet2DModel.from_pretrained(model_dir / "unet").eval()
    scheduler = DDIMScheduler.from_pretrained(model_dir / "scheduler")
    return unet, scheduler


@torch.no_grad()
def sample(
    unet: UNet2DModel,
    scheduler: DDIMScheduler,
    labels: Sequence[int],
    generators: Sequence[torch.Generator],
    *,
    guidance_scale: float,
    steps: int,
    num_classes: int,
) -> np.ndarray:
    """Sample one image per (label, generator) with CFG; returns (N, 8, 8) floats in [0, 1].

    Each row draws its starting noise from its own seeded generator and DDIM runs with eta=0
    (deterministic), so a row's image does not depend on which batch it fell into.
    ``guidance_scale`` follows the diffusers convention: eps = eps_u + w (eps_c - eps_u),
    so w=1 is plain conditional sampling (one pass) and w=0 ignores the label altogether.
    """
    size = unet.config.sample_size
    scheduler.set_timesteps(steps)
    lab = torch.as_tensor(list(labels), dtype=torch.long)
    x = torch.stack([torch.randn((1, size, size), generator=g) for g in generators])
    null = torch.full_like(lab, num_classes)
    for t in scheduler.timesteps:
        if guidance_scale == 1.0:
            eps = unet(x, t, class_labels=lab).sample
        else:
            both = unet(torch.cat([x, x]), t, class_labels=torch.cat([lab, null])).sample
            eps_c, eps_u = both.chunk(2)
            eps = eps_u + guidance_scale * (eps_c - eps_u)
        x = scheduler.step(eps, t, x, eta=0.0).prev_sample
    return ((x[:, 0] + 1) / 2).clamp(0, 1).numpy().astype(np.float32)


class DigitsPipeline:
    """The trained DDPM behind the same call signature as a diffusers text-to-image pipeline.

    Prompts are class names (the demo's class-name prompts), so one generation code path
    (:func:`synth2real.generate.pipelines.generate_shard`: per-row seeds, OOM back-off, atomic
    shards) serves the demo and the paper's generators alike.
    """

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDIMScheduler,
        class_names: Sequence[str],
        output_size: int,
    ) -> None:
        self.unet, self.scheduler = unet, scheduler
        self.class_names = list(class_names)
        self.output_size = output_size

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, class_names: Sequence[str], output_size: int
    ) -> DigitsPipeline:
        unet, scheduler = load_ddpm(model_dir)
        return cls(unet, scheduler, class_names, output_size)

    def __call__(
        self,
        prompt: Sequence[str],
        generator: Sequence[torch.Generator],
        num_inference_steps: int,
        guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        output_type: str = "np",
    ) -> SimpleNamespace:
        unknown = sorted({p for p in prompt if p not in self.class_names})
        if unknown:
            raise ValueError(f"DigitsPipeline prompts must be class names; got {unknown}")
        size = self.unet.config.sample_size
        if (height or size) != size or (width or size) != size:
            raise ValueError(f"DigitsPipeline samples {size}x{size}; set resolution: {size}")
        labels = [self.class_names.index(p) for p in prompt]
        x = sample(
            self.unet,
            self.scheduler,
            labels,
            generator,
            guidance_scale=guidance_scale,
            steps=num_inference_steps,
            num_classes=len(self.class_names),
        )
        return SimpleNamespace(images=upscale_float(x, self.output_size))


def train_from_shards(
    shard_paths: Sequence[str | Path], out_dir: str | Path, *, seed: int, **settings: Any
) -> dict[str, float]:
    """Train on exactly the digits in the real train shards, at their 8x8 source size.

    The shards hold upscaled RGB copies; their ``source_id`` (``digits-<index>``) points back
    to the original 8x8 scan, which is what the generator models.
    """
    from synth2real.data.digits import load_digits_array
    from synth2real.shards import read_shards

    table = read_shards(list(shard_paths), ["label", "source_id"])
    index = np.array([int(s.split("-", 1)[1]) for s in table.column("source_id").to_pylist()])
    images, labels = load_digits_array()
    if not np.array_equal(labels[index], table.column("label").to_numpy()):
        raise ValueError("shard labels disagree with the digits they point to")
    return train_ddpm(
        images[index], labels[index], int(labels.max()) + 1, out_dir, seed=seed, **settings
    )
