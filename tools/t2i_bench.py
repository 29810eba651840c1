"""Cost model of text-to-image generation: FLOPs per image, measured images/s, GPU-hours.

Weights do not change FLOPs or speed, so every generator is rebuilt from architecture configs
kept in the repository (``tools/t2i_architectures/<id>/<role>.json``, the public
``config.json`` of each component) with random weights. FLOPs are counted on the ``meta``
device (no memory, no arithmetic: a 20B-parameter model costs nothing to count on a laptop);
throughput is measured on real tensors, at the generator's steps and resolution, over a range
of batch sizes. The result answers "how many GPU-hours does the paper's grid cost, and how close
to the GPU's peak do we run" before a single SLURM job is submitted.

Per image: ``steps x cfg x F(denoiser) + cfg x F(text encoders) + F(VAE decode)``, where
``cfg`` is 2 under real classifier-free guidance (:func:`synth2real.registry.cfg_factor`).
Scheduler arithmetic and Python overhead are not counted (negligible at these sizes).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from synth2real.registry import cfg_factor

#: Roles a generator's architecture directory may hold; text encoders run in this order.
TEXT_ROLES = ("text_encoder", "text_encoder_2", "text_encoder_3")
#: Qwen-Image's chat template adds 34 tokens that the pipeline drops before the denoiser.
QWEN_TEMPLATE_TOKENS = 34


@dataclass
class Component:
    """One module of a generator built from its config (on ``meta`` for counting)."""

    role: str
    cls_name: str
    config: dict[str, Any]
    module: torch.nn.Module

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


@dataclass
class BenchResult:
    """FLOPs and (optionally) measured speed of one generator under one set of levers."""

    generator: str
    pipeline: str
    levers: str
    steps: int
    cfg: int
    resolution: int
    params: dict[str, int] = field(default_factory=dict)
    flops: dict[str, float] = field(default_factory=dict)
    batch_size: int | None = None
    images_per_s: float | None = None
    seconds_per_image: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def flops_per_image(self) -> float:
        return (
            self.steps * self.cfg * self.flops.get("denoiser", 0.0)
            + self.cfg * self.flops.get("text", 0.0)
            + self.flops.get("vae", 0.0)
        )


# ------------------------------------------------------------------------------------ build
def architecture_dir(config_dir: str | os.PathLike[str], spec: Mapping[str, Any]) -> Path:
    """``<config_dir>/<generator id>``, else ``<config_dir>/<pipeline class>`` (shared configs)."""
    root = Path(config_dir)
    for name in (spec.get("id"), spec["pipeline"]):
        if name and (root / str(name) / "denoiser.json").is_file():
            return root / str(name)
    raise FileNotFoundError(f"no architecture configs for {spec.get('id')!r} under {root}")


def build_module(
    config: Mapping[str, Any], device: Any = "meta", dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """Instantiate a diffusers (``_class_name``) or transformers (``architectures``) model.

    On ``meta`` nothing is allocated; any buffer a constructor built on the CPU (numpy position
    tables) is moved to meta too, so counting never mixes devices. On a real device the module
    is built directly there in ``dtype`` (a 20B model must not pass through fp32 host memory).
    """
    cfg = dict(config)
    prev = torch.get_default_dtype()
    if dtype is not None and dtype.is_floating_point:
        torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if "_class_name" in cfg:
                import diffusers

                cls = getattr(diffusers, cfg.pop("_class_name"))
                module = cls.from_config(cfg)
            else:
                import transformers

                cls = getattr(transformers, cfg["architectures"][0])
                module = cls(cls.config_class.from_dict(cfg))
    finally:
        torch.set_default_dtype(prev)
    module = module.to(device=device, dtype=dtype) if dtype is not None else module.to(device)
    # Never trained here; parameters that require grad also trip FlopCounterMode's module
    # tracker under inference_mode (it hooks tensors that require grad).
    module.requires_grad_(False)
    return module.eval()


def load_components(
    arch_dir: str | os.PathLike[str],
    device: Any = "meta",
    dtype: torch.dtype | None = None,
    roles: Sequence[str] | None = None,
) -> dict[str, Component]:
    """Build every ``<role>.json`` in ``arch_dir`` (or only ``roles``)."""
    out = {}
    for path in sorted(Path(arch_dir).glob("*.json")):
        role = path.stem
        if roles is not None and role not in roles:
            continue
        config = json.loads(path.read_text())
        cls_name = config.get("_class_name") or config["architectures"][0]
        out[role] = Component(role, cls_name, config, build_module(config, device, dtype))
    return out


# ------------------------------------------------------------------------------------ inputs
def vae_scale(vae_config: Mapping[str, Any]) -> int:
    """Pixels per latent cell for the VAE families in the registry."""
    cls = vae_config.get("_class_name")
    if cls == "AutoencoderDC":
        return 2 ** (len(vae_config["encoder_block_out_channels"]) - 1)
    if cls == "AutoencoderKLQwenImage":
        return 2 ** len(vae_config["temperal_downsample"])
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


def text_lengths(spec: Mapping[str, Any], prompt_tokens: int) -> dict[str, int]:
    """Token count each text encoder sees per prompt, as the diffusers pipelines pad them.

    CLIP always pads to 77; T5/Gemma pad to ``max_sequence_length``; Qwen pads to the longest
    prompt in the batch (``prompt_tokens`` plus its chat template).
    """
    kw = spec.get("pipeline_kwargs") or {}
    name = spec["pipeline"]
    msl = kw.get("max_sequence_length")
    if name in ("StableDiffusionPipeline",):
        return {"text_encoder": 77}
    if name == "StableDiffusionXLPipeline":
        return {"text_encoder": 77, "text_encoder_2": 77}
    if name == "StableDiffusion3Pipeline":
        return {"text_encoder": 77, "text_encoder_2": 77, "text_encoder_3": msl or 256}
    if name == "FluxPipeline":
        return {"text_encoder": 77, "text_encoder_2": msl or 512}
    if name == "PixArtAlphaPipeline":
        return {"text_encoder": msl or 120}
    if name == "SanaPipeline":
        return {"text_encoder": msl or 300}
    if name == "Lumina2Pipeline":
        return {"text_encoder": msl or 256}
    if name == "QwenImagePipeline":
        return {"text_encoder": prompt_tokens + QWEN_TEMPLATE_TOKENS}
    raise NotImplementedError(f"no text-length rule for {name}")


def text_inputs(comp: Component, batch: int, length: int, device: Any) -> dict[str, Any]:
    """Random token ids of the right vocabulary and length for one text encoder."""
    cfg = comp.config.get("text_config", comp.config)
    vocab = int(cfg["vocab_size"])
    ids = torch.randint(0, vocab, (batch, length), device="cpu").to(device)
    # No attention mask: an all-ones mask costs the same, and transformers inspects mask values
    # (``.item()``), which the meta device cannot answer.
    kwargs: dict[str, Any] = {"input_ids": ids}
    if (
        comp.cls_name.startswith("Qwen2")
        or comp.cls_name.startswith("Gemma")
        or comp.cls_name.startswith("CLIP")
    ):
        kwargs["output_hidden_states"] = True
    return kwargs


def denoiser_inputs(
    spec: Mapping[str, Any],
    comps: Mapping[str, Component],
    batch: int,
    device: Any,
    dtype: torch.dtype,
    prompt_tokens: int = 77,
) -> dict[str, Any]:
    """Keyword inputs of one denoiser forward at the generator's resolution and text lengths.

    Shapes follow what each diffusers pipeline feeds its denoiser; values are random (only the
    shapes matter for cost).
    """
    cfg = comps["denoiser"].config
    name = spec["pipeline"]
    lat = int(spec["resolution"]) // vae_scale(comps["vae"].config)
    lengths = text_lengths(spec, prompt_tokens)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=dtype)

    t = torch.full((batch,), 500.0, device=device, dtype=dtype)
    if name in ("StableDiffusionPipeline", "StableDiffusionXLPipeline"):
        inputs: dict[str, Any] = {
            "sample": rnd(batch, cfg["in_channels"], lat, lat),
            "timestep": t,
            "encoder_hidden_states": rnd(batch, 77, cfg["cross_attention_dim"]),
        }
        if cfg.get("addition_embed_type") == "text_time":
            pooled = (
                cfg["projection_class_embeddings_input_dim"] - 6 * cfg["addition_time_embed_dim"]
            )
            inputs["added_cond_kwargs"] = {
                "text_embeds": rnd(batch, pooled),
                "time_ids": rnd(batch, 6),
            }
        return inputs
    if name == "StableDiffusion3Pipeline":
        seq = 77 + lengths["text_encoder_3"]
        return {
            "hidden_states": rnd(batch, cfg["in_channels"], lat, lat),
            "encoder_hidden_states": rnd(batch, seq, cfg["joint_attention_dim"]),
            "pooled_projections": rnd(batch, cfg["pooled_projection_dim"]),
            "timestep": t,
        }
    if name == "FluxPipeline":
        side, seq = lat // 2, lengths["text_encoder_2"]
        inputs = {
            "hidden_states": rnd(batch, side * side, cfg["in_channels"]),
            "encoder_hidden_states": rnd(batch, seq, cfg["joint_attention_dim"]),
            "pooled_projections": rnd(batch, cfg["pooled_projection_dim"]),
            "timestep": t / 1000,
            "img_ids": torch.zeros(side * side, 3, device=device, dtype=dtype),
            "txt_ids": torch.zeros(seq, 3, device=device, dtype=dtype),
        }
        if cfg.get("guidance_embeds"):
            inputs["guidance"] = torch.full((batch,), 2.0, device=device, dtype=torch.float32)
        return inputs
    if name == "PixArtAlphaPipeline":
        seq = lengths["text_encoder"]
        return {
            "hidden_states": rnd(batch, cfg["in_channels"], lat, lat),
            "encoder_hidden_states": rnd(batch, seq, cfg["caption_channels"]),
            "timestep": t,
            "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
            "encoder_attention_mask": torch.ones(batch, seq, device=device),
        }
    if name == "SanaPipeline":
        seq = lengths["text_encoder"]
        return {
            "hidden_states": rnd(batch, cfg["in_channels"], lat, lat),
            "encoder_hidden_states": rnd(batch, seq, cfg["caption_channels"]),
            "timestep": t,
            "encoder_attention_mask": torch.ones(batch, seq, device=device),
        }
    if name == "Lumina2Pipeline":
        seq = lengths["text_encoder"]
        return {
            "hidden_states": rnd(batch, cfg["in_channels"], lat, lat),
            "timestep": t / 1000,
            "encoder_hidden_states": rnd(batch, seq, cfg["cap_feat_dim"]),
            "encoder_attention_mask": torch.ones(batch, seq, device=device, dtype=torch.bool),
        }
    if name == "QwenImagePipeline":
        side, seq = lat // 2, prompt_tokens
        return {
            "hidden_states": rnd(batch, side * side, cfg["in_channels"]),
            "encoder_hidden_states": rnd(batch, seq, cfg["joint_attention_dim"]),
            "encoder_hidden_states_mask": torch.ones(batch, seq, device=device, dtype=torch.long),
            "timestep": t / 1000,
            "img_shapes": [[(1, side, side)]] * batch,
        }
    raise NotImplementedError(f"no denoiser input rule for {name}")


def vae_latents(
    spec: Mapping[str, Any], vae: Component, batch: int, device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """Latents the VAE decodes into one ``resolution``-px image each."""
    lat = int(spec["resolution"]) // vae_scale(vae.config)
    channels = vae.config.get("latent_channels") or vae.config.get("z_dim")
    if vae.cls_name == "AutoencoderKLQwenImage":
        return torch.randn(batch, channels, 1, lat, lat, device=device, dtype=dtype)
    return torch.randn(batch, channels, lat, lat, device=device, dtype=dtype)


def _calls(
    spec: Mapping[str, Any],
    comps: Mapping[str, Component],
    batch: int,
    device: Any,
    dtype: torch.dtype,
    prompt_tokens: int,
) -> dict[str, list[Callable[[], Any]]]:
    """Zero-argument callables per stage (denoiser / text / vae) with inputs bound."""
    den = comps["denoiser"].module
    den_in = denoiser_inputs(spec, comps, batch, device, dtype, prompt_tokens)
    lengths = text_lengths(spec, prompt_tokens)
    text = []
    for role in TEXT_ROLES:
        if role in comps:
            kw = text_inputs(comps[role], batch, lengths[role], device)
            text.append(lambda m=comps[role].module, kw=kw: m(**kw))
    vae = comps["vae"].module
    z = vae_latents(spec, comps["vae"], batch, device, dtype)
    return {
        "denoiser": [lambda: den(**den_in, return_dict=False)],
        "text": text,
        "vae": [lambda: vae.decode(z, return_dict=False)],
    }


# ------------------------------------------------------------------------------------ FLOPs
@contextlib.contextmanager
def _meta_friendly(comps: Mapping[str, Component]) -> Iterator[None]:
    """Let denoisers that read tensor *values* run on meta.

    Lumina2's rotary embedder reads caption lengths off the attention mask (``.tolist()``);
    only the shapes matter for FLOPs, so it gets an all-ones CPU copy of the mask.
    """
    den = comps["denoiser"].module
    rope = getattr(den, "rope_embedder", None)
    if comps["denoiser"].cls_name != "Lumina2Transformer2DModel" or rope is None:
        yield
        return
    original = rope.forward

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        return original(hidden_states, torch.ones(attention_mask.shape, dtype=torch.bool))

    rope.forward = forward
    try:
        yield
    finally:
        del rope.forward


def count_flops(
    spec: Mapping[str, Any],
    comps: Mapping[str, Component],
    prompt_tokens: int = 77,
    device: Any = "meta",
) -> dict[str, float]:
    """FLOPs of one denoiser forward, all text encoders and one VAE decode, each for one image.

    Count on ``meta`` (the default): there SDPA takes its math path, whose matmuls the counter
    sees. On the CPU PyTorch's fused attention kernel has no FLOP formula and attention would
    silently count as zero.
    """
    from torch.utils.flop_counter import FlopCounterMode

    dtype = next(comps["denoiser"].module.parameters()).dtype
    out = {}
    with torch.inference_mode(), _meta_friendly(comps):
        for stage, fns in _calls(spec, comps, 1, device, dtype, prompt_tokens).items():
            counter = FlopCounterMode(display=False)
            with counter:
                for fn in fns:
                    fn()
            out[stage] = float(counter.get_total_flops())
    return out


# ------------------------------------------------------------------------------------ timing
def apply_levers(comps: Mapping[str, Component], levers: Sequence[str]) -> list[str]:
    """Apply speed levers to the denoiser; return the ones that did not apply (and why)."""
    den = comps["denoiser"].module
    skipped = []
    for lever in levers:
        if lever == "fused_qkv":
            if hasattr(den, "fuse_qkv_projections"):
                den.fuse_qkv_projections()
            else:
                skipped.append("fused_qkv: not supported by " + comps["denoiser"].cls_name)
        elif lever == "channels_last":
            if comps["denoiser"].cls_name.startswith("UNet"):
                den.to(memory_format=torch.channels_last)
            else:
                skipped.append("channels_last: only for UNets")
        elif lever == "compile":
            if getattr(den, "_repeated_blocks", None):
                den.compile_repeated_blocks(fullgraph=True)
            else:
                comps["denoiser"].module = torch.compile(den)
                den = comps["denoiser"].module
        elif lever.startswith("attn="):
            den.set_attention_backend(lever.split("=", 1)[1])
        elif lever != "baseline":
            raise ValueError(f"unknown lever {lever!r}")
    return skipped


def _sync(device: Any) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: Any, warmup: int = 1, repeats: int = 3) -> float:
    """Median seconds of ``fn()`` after ``warmup`` runs (compilation, autotuning, caches)."""
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        _sync(device)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def measure(
    spec: Mapping[str, Any],
    comps: Mapping[str, Component],
    batch_sizes: Sequence[int],
    device: Any,
    dtype: torch.dtype,
    prompt_tokens: int = 77,
    warmup: int = 1,
    repeats: int = 3,
    min_gain: float = 0.02,
) -> tuple[int, float, dict[str, float]]:
    """Best batch size, its images/s and seconds per image per stage.

    Batch sizes are tried in increasing order; the search stops at the first out-of-memory or
    when a doubling gains less than ``min_gain`` (the GPU is saturated). Under CFG the denoiser
    runs at twice the batch, as the pipelines do.
    """
    cfg = cfg_factor(spec)
    steps = int(spec["steps"])
    best: tuple[int, float, dict[str, float]] | None = None
    for bs in sorted(batch_sizes):
        try:
            den_calls = _calls(spec, comps, bs * cfg, device, dtype, prompt_tokens)
            calls = _calls(spec, comps, bs, device, dtype, prompt_tokens)
            t_den = time_call(den_calls["denoiser"][0], device, warmup, repeats)
            t_text = sum(time_call(f, device, warmup, repeats) for f in calls["text"])
            t_vae = time_call(calls["vae"][0], device, warmup, repeats)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as err:
            if not _is_oom(err):
                raise
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            break
        total = steps * t_den + cfg * t_text + t_vae
        ips = bs / total
        per_image = {"denoiser": steps * t_den / bs, "text": cfg * t_text / bs, "vae": t_vae / bs}
        if best is not None and ips < best[1] * (1 + min_gain):
            if ips > best[1]:
                best = (bs, ips, per_image)
            break
        best = (bs, ips, per_image)
    if best is None:
        raise RuntimeError(f"{spec.get('id')}: even the smallest batch size ran out of memory")
    return best


# ------------------------------------------------------------------------------------ grid
def grid_images(
    classes: int = 200, train: int = 500, val: int = 50, test: int = 50, prompt_types: int = 2
) -> int:
    """Images one generator produces for the paper's grid (all prompt types and splits)."""
    return prompt_types * classes * (train + val + test)


def gpu_hours(images: int, images_per_s: float) -> float:
    """GPU-hours to generate ``images`` at ``images_per_s`` on one GPU."""
    return images / images_per_s / 3600.0


def bench_generator(
    spec: Mapping[str, Any],
    config_dir: str | os.PathLike[str],
    *,
    device: Any = "cpu",
    dtype: torch.dtype = torch.float32,
    measure_speed: bool = True,
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64),
    levers: Sequence[str] = ("baseline",),
    prompt_tokens: int = 77,
    warmup: int = 1,
    repeats: int = 3,
) -> BenchResult:
    """FLOPs (always, on meta) and, if ``measure_speed``, images/s of one generator."""
    arch = architecture_dir(config_dir, spec)
    meta = load_components(arch, "meta", dtype)
    res = BenchResult(
        generator=str(spec.get("id")),
        pipeline=spec["pipeline"],
        levers="+".join(levers),
        steps=int(spec["steps"]),
        cfg=cfg_factor(spec),
        resolution=int(spec["resolution"]),
        params={r: c.params for r, c in meta.items()},
        flops=count_flops(spec, meta, prompt_tokens),
    )
    del meta
    if measure_speed:
        comps = load_components(arch, device, dtype)
        notes = apply_levers(comps, levers)
        res.note = "; ".join(notes)
        res.batch_size, res.images_per_s, res.seconds_per_image = measure(
            spec, comps, batch_sizes, device, dtype, prompt_tokens, warmup, repeats
        )
        del comps
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return res


def summarise(
    result: BenchResult, peak_tflops: float, n_images: int, assumed_mfu: float = 0.4
) -> dict[str, Any]:
    """One table row: FLOPs, speed, fraction of peak, GPU-hours for ``n_images``.

    Without a measurement the speed is an estimate: ``assumed_mfu`` of the peak spent on this
    generator's FLOPs per image (marked ``est``), so the grid can be costed before a GPU exists.
    """
    flops = result.flops_per_image
    if result.images_per_s is not None:
        ips, source = result.images_per_s, "measured"
    else:
        ips, source = assumed_mfu * peak_tflops * 1e12 / flops, f"est@{assumed_mfu:.0%}MFU"
    achieved = ips * flops / 1e12
    return {
        "generator": result.generator,
        "levers": result.levers,
        "denoiser_params_b": result.params.get("denoiser", 0) / 1e9,
        "steps": result.steps,
        "cfg": result.cfg,
        "resolution": result.resolution,
        "denoiser_gflop": result.flops.get("denoiser", 0.0) / 1e9,
        "text_gflop": result.flops.get("text", 0.0) / 1e9,
        "vae_gflop": result.flops.get("vae", 0.0) / 1e9,
        "tflop_per_image": flops / 1e12,
        "batch_size": result.batch_size,
        "images_per_s": ips,
        "speed_source": source,
        "achieved_tflops": achieved,
        "fraction_of_peak": achieved / peak_tflops,
        "grid_images": n_images,
        "gpu_hours": gpu_hours(n_images, ips),
        "note": result.note,
    }
