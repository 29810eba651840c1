"""A small class- and caption-conditional diffusion model: the demo's stand-in for a T2I model.

It is a diffusers ``UNet2DModel`` trained on the real train split inside the workflow and
sampled with DDIM at several classifier-free guidance (CFG) scales. Each scale is one
"generator" of the grid, which asks the paper's question at laptop size: does the generator
whose samples follow the prompt more closely (high guidance) make worse training data?

What keeps it on the digits' manifold across the guidance grid (issue 17, measured in
docs/generators.md): v-prediction on a zero-terminal-SNR schedule, sampled with trailing
DDIM steps and *no* x0 clipping, and an EMA of the weights. With epsilon-prediction and
clipping, guidance 3 and up turned the digits to grey haze.

The condition is a class and, optionally, a caption (the measured attributes of
:mod:`synth2real.captions.digits`): one embedding per class and per attribute bin, summed
into the UNet's time embedding (``class_embed_type="identity"``). Each attribute has a null
bin and the class a null label; training drops the class and the caption independently, so
one network serves class-name prompts, caption prompts and the unconditional pass of CFG.
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
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from tqdm.auto import tqdm

from synth2real.captions.digits import ATTRIBUTES, parse_caption
from synth2real.data.digits import upscale_float

#: Bins per caption attribute (their null bin is one past).
N_BINS = 3


class DigitsCondition(ModelMixin, ConfigMixin):
    """Class and caption-attribute embeddings, summed: the UNet's condition vector.

    A diffusers model so it saves and loads with ``save_pretrained``/``from_pretrained``
    beside the UNet. Index ``num_classes`` is the null class, index ``N_BINS`` the null bin.
    """

    @register_to_config
    def __init__(self, num_classes: int, num_attributes: int, dim: int) -> None:
        super().__init__()
        self.classes = torch.nn.Embedding(num_classes + 1, dim)
        self.attributes = torch.nn.ModuleList(
            torch.nn.Embedding(N_BINS + 1, dim) for _ in range(num_attributes)
        )

    def forward(self, labels: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        out = self.classes(labels)
        for a, table in enumerate(self.attributes):
            out = out + table(bins[:, a])
        return out


def build_unet(sample_size: int = 8, width: int = 32) -> UNet2DModel:
    """A tiny UNet for 1-channel 8x8 digits, conditioned through its time embedding."""
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(width, width * 2),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        class_embed_type="identity",
        norm_num_groups=8,
        attention_head_dim=8,
    )


def build_scheduler(train_timesteps: int) -> DDPMScheduler:
    """v-prediction on the cosine schedule rescaled to zero terminal SNR, no clipping, with
    trailing timesteps: sampling starts from pure noise, as training ended (Lin et al. 2024).
    """
    return DDPMScheduler(
        num_train_timesteps=train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        clip_sample=False,
        timestep_spacing="trailing",
    )


def null_bins(n: int, num_attributes: int = len(ATTRIBUTES)) -> torch.Tensor:
    return torch.full((n, num_attributes), N_BINS, dtype=torch.long)


def bins_of_caption(caption: str) -> list[int]:
    """A caption's attribute bins, the null bin where it names none (training and sampling
    read captions the same way)."""
    return [N_BINS if b is None else b for b in parse_caption(caption)]


def train_ddpm(
    images: np.ndarray,
    labels: np.ndarray,
    caption_bins: np.ndarray | None,
    num_classes: int,
    out_dir: str | Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    width: int,
    train_timesteps: int,
    cond_drop: float,
    caption_drop: float,
    ema_decay: float,
    seed: int,
) -> dict[str, float]:
    """Train with the v objective and save the EMA weights as diffusers model dirs.

    ``images`` are (N, 8, 8) in [0, 1], scaled to [-1, 1]; ``caption_bins`` (N, A) are each
    image's caption attributes (None: no captions, class-only training). The class is dropped
    to null with ``cond_drop``, the whole caption with ``caption_drop``, independently.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.as_tensor(images, dtype=torch.float32)[:, None] * 2 - 1
    y_all = torch.as_tensor(labels, dtype=torch.long)
    n_attr = len(ATTRIBUTES)
    b_all = null_bins(len(x_all)) if caption_bins is None else torch.as_tensor(caption_bins)
    unet = build_unet(images.shape[-1], width).to(memory_format=torch.channels_last)
    cond = DigitsCondition(num_classes, n_attr, unet.config.block_out_channels[0] * 4)
    scheduler = build_scheduler(train_timesteps)
    params = [*unet.parameters(), *cond.parameters()]
    # Channels-last convolutions and the fused CPU AdamW: ~15 % faster here, same objective.
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    ema = [p.detach().clone() for p in params]
    start, losses = time.perf_counter(), []
    for step in tqdm(range(steps), desc="train ddpm", mininterval=5):
        idx = torch.randint(0, len(x_all), (batch_size,), generator=gen)
        x0, y, b = x_all[idx], y_all[idx].clone(), b_all[idx].clone()
        y[torch.rand(batch_size, generator=gen) < cond_drop] = num_classes
        b[torch.rand(batch_size, generator=gen) < caption_drop] = N_BINS
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, train_timesteps, (batch_size,), generator=gen)
        xt = scheduler.add_noise(x0, noise, t)
        pred = unet(xt, t, class_labels=cond(y, b)).sample
        loss = F.mse_loss(pred, scheduler.get_velocity(x0, noise, t))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        decay = min(ema_decay, (1 + step) / (10 + step))  # warm-up: early EMA is not stale
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p, 1 - decay)
        losses.append(loss.item())
    with torch.no_grad():
        for e, p in zip(ema, params):
            p.copy_(e)
    out_dir = Path(out_dir)
    unet.to(memory_format=torch.contiguous_format).save_pretrained(out_dir / "unet")
    cond.save_pretrained(out_dir / "condition")
    scheduler.save_pretrained(out_dir / "scheduler")
    return {
        "seconds": time.perf_counter() - start,
        "final_loss": float(np.mean(losses[-50:])),
        "parameters": sum(p.numel() for p in params),
        "captions": caption_bins is not None,
    }


def load_ddpm(model_dir: str | Path) -> tuple[UNet2DModel, DigitsCondition, DDIMScheduler]:
    """Load the trained UNet (channels-last: its convolutions sample ~13 % faster on CPU), its
    condition embeddings and a DDIM scheduler of its schedule."""
    model_dir = Path(model_dir)
    unet = UNet2DModel.from_pretrained(model_dir / "unet").eval()
    unet = unet.to(memory_format=torch.channels_last)
    cond = DigitsCondition.from_pretrained(model_dir / "condition").eval()
    scheduler = DDIMScheduler.from_pretrained(model_dir / "scheduler")
    return unet, cond, scheduler


@torch.no_grad()
def sample(
    unet: UNet2DModel,
    cond: DigitsCondition,
    scheduler: DDIMScheduler,
    labels: Sequence[int],
    bins: torch.Tensor,
    generators: Sequence[torch.Generator],
    *,
    guidance_scale: float,
    steps: int,
) -> np.ndarray:
    """Sample one image per (label, caption bins, generator) with CFG: (N, 8, 8) in [0, 1].

    Each row draws its starting noise from its own seeded generator and DDIM runs with eta=0
    (deterministic), so a row's image does not depend on which batch it fell into.
    ``guidance_scale`` follows the diffusers convention, v = v_u + w (v_c - v_u) with v_u
    conditioned on nothing (null class, null caption): w=1 is plain conditional sampling.
    """
    size = unet.config.sample_size
    scheduler.set_timesteps(steps)
    lab = torch.as_tensor(list(labels), dtype=torch.long)
    x = torch.stack([torch.randn((1, size, size), generator=g) for g in generators])
    c = cond(lab, bins)
    c_null = cond(torch.full_like(lab, cond.config.num_classes), null_bins(len(lab)))
    for t in scheduler.timesteps:
        if guidance_scale == 1.0:
            v = unet(x, t, class_labels=c).sample
        else:
            both = unet(torch.cat([x, x]), t, class_labels=torch.cat([c, c_null])).sample
            v_c, v_u = both.chunk(2)
            v = v_u + guidance_scale * (v_c - v_u)
        x = scheduler.step(v, t, x, eta=0.0).prev_sample
    return ((x[:, 0] + 1) / 2).clamp(0, 1).numpy().astype(np.float32)


def prompt_condition(
    prompts: Sequence[str], class_names: Sequence[str]
) -> tuple[list[int], torch.Tensor]:
    """Class labels and caption bins of prompts ``"[class]"`` or ``"[class], [caption]"``."""
    labels, rows = [], []
    for prompt in prompts:
        name, _, caption = prompt.partition(",")
        if name.strip() not in class_names:
            raise ValueError(f"DigitsPipeline prompts start with a class name; got {prompt!r}")
        labels.append(list(class_names).index(name.strip()))
        rows.append(bins_of_caption(caption))
    return labels, torch.as_tensor(rows, dtype=torch.long).reshape(len(rows), len(ATTRIBUTES))


class DigitsPipeline:
    """The trained DDPM behind the same call signature as a diffusers text-to-image pipeline.

    Prompts are class names or ``"[class], [caption]"`` (the prompts rule's two types), so one
    generation code path
    (:func:`synth2real.generate.pipelines.generate_shard`: per-row seeds, OOM back-off, atomic
    shards) serves the demo and the paper's generators alike.
    """

    def __init__(
        self,
        unet: UNet2DModel,
        cond: DigitsCondition,
        scheduler: DDIMScheduler,
        class_names: Sequence[str],
        output_size: int,
    ) -> None:
        self.unet, self.cond, self.scheduler = unet, cond, scheduler
        self.class_names = list(class_names)
        self.output_size = output_size

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, class_names: Sequence[str], output_size: int
    ) -> DigitsPipeline:
        return cls(*load_ddpm(model_dir), class_names, output_size)

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
        size = self.unet.config.sample_size
        if (height or size) != size or (width or size) != size:
            raise ValueError(f"DigitsPipeline samples {size}x{size}; set resolution: {size}")
        labels, bins = prompt_condition(prompt, self.class_names)
        x = sample(
            self.unet,
            self.cond,
            self.scheduler,
            labels,
            bins,
            generator,
            guidance_scale=guidance_scale,
            steps=num_inference_steps,
        )
        return SimpleNamespace(images=upscale_float(x, self.output_size))


def train_from_shards(
    shard_paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    seed: int,
    captions: str | Path | None = None,
    **settings: Any,
) -> dict[str, float]:
    """Train on exactly the digits in the real train shards, at their 8x8 source size.

    The shards hold upscaled RGB copies; their ``source_id`` (``digits-<index>``) points back
    to the original 8x8 scan, which is what the generator models. ``captions`` (the train
    captions table) adds each image's caption attributes to its condition.
    """
    import pyarrow.parquet as pq

    from synth2real.data.digits import load_digits_array
    from synth2real.shards import read_shards

    table = read_shards(list(shard_paths), ["label", "source_id"])
    ids = [str(s) for s in table.column("source_id").to_pylist()]
    index = np.array([int(s.split("-", 1)[1]) for s in ids])
    images, labels = load_digits_array()
    if not np.array_equal(labels[index], table.column("label").to_numpy()):
        raise ValueError("shard labels disagree with the digits they point to")
    bins = None
    if captions is not None:
        by_id = dict(
            zip(*pq.read_table(captions, columns=["image_id", "caption"]).to_pydict().values())
        )
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise ValueError(f"{len(missing)} train image(s) have no caption, e.g. {missing[0]}")
        bins = np.array([bins_of_caption(by_id[i]) for i in ids])
    return train_ddpm(
        images[index], labels[index], bins, int(labels.max()) + 1, out_dir, seed=seed, **settings
    )
