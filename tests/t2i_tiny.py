"""Tiny random-weight text-to-image pipelines of the paper's diffusers classes, built offline.

diffusers' own fast tests build tiny components the same way but download tiny tokenizers from
the hub; here every tokenizer is made locally from a hand-made vocabulary (byte-level BPE for
CLIP/Qwen2, a Unigram vocabulary for T5, byte-fallback BPE for Gemma), so the tests run without
a network. Each builder returns a pipeline object of the real class; `save_tiny_pipeline`
writes it with `save_pretrained`, and the tests load it back through `load_pipeline`.

Each family also has a tiny registry entry (`TINY_SPECS`): 16 px, 2 steps, CFG 2.0, stored at
8 px, with the call options that keep the tiny run fast and exact (short text sequences, no
resolution binning).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers.pre_tokenizers import ByteLevel

RES = 16
OUT = 8

_BYTE_ALPHABET = sorted(ByteLevel.alphabet())


# ---------------------------------------------------------------------------------- tokenizers
def clip_tokenizer(model_max_length: int = 77):
    """CLIP BPE over the 256 byte-level symbols (plus their end-of-word forms), no merges."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in _BYTE_ALPHABET:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def t5_tokenizer(model_max_length: int = 512):
    """A T5 (Unigram) tokenizer over lowercase/uppercase letters, digits and punctuation."""
    from transformers import T5Tokenizer

    chars = "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,.!?'-"
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(c, -float(i + 1)) for i, c in enumerate(chars)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def gemma_tokenizer():
    """A Gemma BPE with byte fallback: every string tokenizes, vocabulary ~ 330 ids."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for c in "▁abcdefghijklmnopqrstuvwxyz,.":
        vocab.setdefault(c, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[])


def qwen2_tokenizer():
    """A Qwen2 byte-level BPE with the chat special tokens the Qwen-Image prompt template uses."""
    from transformers import Qwen2Tokenizer

    vocab = {"<|endoftext|>": 0}
    for ch in _BYTE_ALPHABET:
        vocab.setdefault(ch, len(vocab))
    tok = Qwen2Tokenizer(vocab=vocab, merges=[])
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tok


# ---------------------------------------------------------------------------------- encoders
def _clip_text(tok, hidden: int = 32, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=len(tok),
        hidden_act="gelu",
        max_position_embeddings=77,
        projection_dim=projection or hidden,
    )
    cls = CLIPTextModelWithProjection if projection is not None else CLIPTextModel
    return cls(cfg).eval()


def _t5_encoder(tok, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    cfg = T5Config(
        vocab_size=len(tok),
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(cfg).eval()


def _gemma2(tok, hidden: int = 8):
    from transformers import Gemma2Config, Gemma2Model

    cfg = Gemma2Config(
        head_dim=16,
        hidden_size=hidden,
        intermediate_size=32,
        max_position_embeddings=512,
        num_attention_heads=2,
        num_hidden_layers=1,
        num_key_value_heads=2,
        vocab_size=len(tok),
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    return Gemma2Model(cfg).eval()


def _sd_vae(latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(4, 8),
        in_channels=3,
        out_channels=3,
        norm_num_groups=2,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=latent_channels,
        layers_per_block=1,
        sample_size=RES,
        **extra,
    ).eval()


# ---------------------------------------------------------------------------------- pipelines
def build_sd():
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=RES // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
        attention_head_dim=2,
    ).eval()
    tok = clip_tokenizer()
    return StableDiffusionPipeline(
        vae=_sd_vae(),
        text_encoder=_clip_text(tok),
        tokenizer=tok,
        unet=unet,
        scheduler=DDIMScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_sdxl():
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=RES // 2,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,
        norm_num_groups=2,
    ).eval()
    tok = clip_tokenizer()
    return StableDiffusionXLPipeline(
        vae=_sd_vae(),
        text_encoder=_clip_text(tok),
        text_encoder_2=_clip_text(tok, projection=32),
        tokenizer=tok,
        tokenizer_2=clip_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(),
    )


def build_sd3():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=RES // 2,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        out_channels=4,
    ).eval()
    tok, tok3 = clip_tokenizer(), t5_tokenizer()
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_sd_vae(
            shift_factor=0.0609,
            scaling_factor=1.5035,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        text_encoder=_clip_text(tok, projection=32),
        tokenizer=tok,
        text_encoder_2=_clip_text(tok, projection=32),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5_encoder(tok3, d_model=64),
        tokenizer_3=tok3,
    )


def build_flux():
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=True,
    ).eval()
    tok, tok2 = clip_tokenizer(), t5_tokenizer()
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_sd_vae(
            shift_factor=0.1159,
            scaling_factor=0.3611,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        text_encoder=_clip_text(tok),
        tokenizer=tok,
        text_encoder_2=_t5_encoder(tok2),
        tokenizer_2=tok2,
        transformer=transformer,
    )


def build_pixart():
    from diffusers import DPMSolverMultistepScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    torch.manual_seed(0)
    transformer = PixArtTransformer2DModel(
        sample_size=RES // 2,
        num_layers=2,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    ).eval()
    tok = t5_tokenizer()
    return PixArtAlphaPipeline(
        tokenizer=tok,
        text_encoder=_t5_encoder(tok),
        vae=_sd_vae(),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


def build_sana():
    from diffusers import (
        AutoencoderDC,
        DPMSolverMultistepScheduler,
        SanaPipeline,
        SanaTransformer2DModel,
    )

    torch.manual_seed(0)
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=RES // 2,
    ).eval()
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=[1, 1],
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    ).eval()
    tok = gemma_tokenizer()
    return SanaPipeline(
        tokenizer=tok,
        text_encoder=_gemma2(tok),
        vae=vae,
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


def build_lumina2():
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        Lumina2Pipeline,
        Lumina2Transformer2DModel,
    )

    torch.manual_seed(0)
    transformer = Lumina2Transformer2DModel(
        sample_size=RES // 2,
        patch_size=2,
        in_channels=4,
        hidden_size=8,
        num_layers=2,
        num_attention_heads=1,
        num_kv_heads=1,
        multiple_of=16,
        ffn_dim_multiplier=None,
        norm_eps=1e-5,
        scaling_factor=1.0,
        axes_dim_rope=[4, 2, 2],
        cap_feat_dim=8,
    ).eval()
    tok = gemma_tokenizer()
    return Lumina2Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_sd_vae(
            shift_factor=0.0609,
            scaling_factor=1.5035,
            use_quant_conv=False,
            use_post_quant_conv=False,
        ),
        text_encoder=_gemma2(tok),
        tokenizer=tok,
    )


def build_qwen():
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    ).eval()
    vae = AutoencoderKLQwenImage(
        base_dim=24,
        z_dim=4,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    ).eval()
    tok = qwen2_tokenizer()
    cfg = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "vocab_size": len(tok),
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "bos_token_id": 0,
            "eos_token_id": 0,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        hidden_size=16,
        vocab_size=len(tok),
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    return QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tok,
        transformer=transformer,
    )


BUILDERS = {
    "StableDiffusionPipeline": build_sd,
    "StableDiffusionXLPipeline": build_sdxl,
    "StableDiffusion3Pipeline": build_sd3,
    "FluxPipeline": build_flux,
    "PixArtAlphaPipeline": build_pixart,
    "SanaPipeline": build_sana,
    "Lumina2Pipeline": build_lumina2,
    "QwenImagePipeline": build_qwen,
}


def _spec(pipeline: str, **extra) -> dict:
    spec = {
        "id": f"tiny-{pipeline.removesuffix('Pipeline').lower()}",
        "display_name": f"tiny {pipeline}",
        "release_date": "2020-01-01",
        "repo_id": f"tiny/{pipeline}",
        "pipeline": pipeline,
        "steps": 2,
        "guidance_scale": 2.0,
        "guidance_arg": "guidance_scale",
        "guidance_kind": "cfg",
        "resolution": RES,
        "output_size": OUT,
        "dtype": "float32",
        "gated": False,
        "geneval": None,
        "pipeline_kwargs": {},
    }
    spec.update(extra)
    return spec


#: One tiny registry entry per family (the same keys as config/generators.yaml).
TINY_SPECS = {
    "StableDiffusionPipeline": _spec("StableDiffusionPipeline"),
    "StableDiffusionXLPipeline": _spec("StableDiffusionXLPipeline"),
    "StableDiffusion3Pipeline": _spec(
        "StableDiffusion3Pipeline", pipeline_kwargs={"max_sequence_length": 16}
    ),
    "FluxPipeline": _spec(
        "FluxPipeline", guidance_kind="distilled", pipeline_kwargs={"max_sequence_length": 16}
    ),
    "PixArtAlphaPipeline": _spec(
        "PixArtAlphaPipeline",
        pipeline_kwargs={
            "max_sequence_length": 16,
            "clean_caption": False,
            "use_resolution_binning": False,
        },
    ),
    # Sana's pipeline insists on multiples of 32 px.
    "SanaPipeline": _spec(
        "SanaPipeline",
        resolution=32,
        pipeline_kwargs={
            "max_sequence_length": 16,
            "complex_human_instruction": None,
            "use_resolution_binning": False,
        },
    ),
    "Lumina2Pipeline": _spec("Lumina2Pipeline", pipeline_kwargs={"max_sequence_length": 32}),
    "QwenImagePipeline": _spec(
        "QwenImagePipeline",
        guidance_arg="true_cfg_scale",
        pipeline_kwargs={"negative_prompt": " ", "max_sequence_length": 16},
    ),
}


def save_tiny_pipeline(pipeline: str, dest: str | Path) -> Path:
    """Build the tiny pipeline of class ``pipeline`` and save it (safetensors) under ``dest``."""
    dest = Path(dest)
    BUILDERS[pipeline]().save_pretrained(dest)
    return dest


def write_tiny_architectures(dest: str | Path) -> Path:
    """Write each family's component configs as ``<dest>/<PipelineClass>/<role>.json``.

    The layout the throughput benchmark reads (``--config-dir``), with the same tiny components
    the pipeline tests run, so the benchmark's input shapes are checked against real forwards.
    """
    import json

    dest = Path(dest)
    for name, build in BUILDERS.items():
        pipe = build()
        folder = dest / name
        folder.mkdir(parents=True, exist_ok=True)
        roles = {
            "denoiser": getattr(pipe, "transformer", None) or getattr(pipe, "unet", None),
            "vae": pipe.vae,
        }
        for role in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            if getattr(pipe, role, None) is not None:
                roles[role] = getattr(pipe, role)
        for role, module in roles.items():
            if hasattr(module.config, "to_dict"):
                cfg = module.config.to_dict()
                cfg["architectures"] = [type(module).__name__]
            else:
                cfg = {k: v for k, v in dict(module.config).items() if not k.startswith("_")}
                cfg["_class_name"] = type(module).__name__
            (folder / f"{role}.json").write_text(json.dumps(cfg, indent=1, default=list))
    return dest
