"""Tiny random-weight models of the two transformers classes the grid loads besides the
generators: CLIP ViT-L/14 (metrics) and Depth Anything V2 (the depth probe), built offline.

Each builder writes a directory that ``from_pretrained`` reads, with the same classes as the
real checkpoints (``CLIPModel`` + ``CLIPImageProcessor`` + ``CLIPTokenizer``;
``DepthAnythingForDepthEstimation`` + its image processor), so the tests and the local hub
(tests/hub_server.py) load them through the workflow's own loaders.
"""

from __future__ import annotations

import json
from pathlib import Path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def save_tiny_clip(root: str | Path) -> Path:
    """A tiny CLIP (projection 16, 32 px images) and its BPE tokenizer, saved in ``root/model``.

    The vocabulary is byte-level with a few merges ("the", "cat", "dog"), so "the " is one
    token and the 77-token truncation can be tested exactly.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    merges = ["t h", "th e</w>", "c a", "ca t</w>", "d o", "do g</w>"]
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars])}
    for m in merges:
        vocab[m.replace(" ", "")] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tokenizer = CLIPTokenizer(vocab=str(root / "vocab.json"), merges=str(root / "merges.txt"))

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        projection_dim=16,
    )
    model_dir = root / "model"
    CLIPModel(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(model_dir)
    return model_dir


def save_tiny_depth(path: str | Path) -> Path:
    """A tiny Depth Anything (DINOv2 backbone, 28 px input) and its processor, saved in ``path``."""
    import torch
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    torch.manual_seed(0)
    backbone = Dinov2Config(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        image_size=28, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 8, 8],
        fusion_hidden_size=8, head_hidden_size=8, patch_size=14,
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(
        size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14,
        do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3,
    )  # fmt: skip
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
