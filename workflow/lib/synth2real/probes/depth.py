"""The structure probe: Depth Anything V2 depth maps through transformers.

Depth removes texture and keeps layout, so a classifier trained on depth maps measures how well
a generator gets *structure* right. As in the official code, each map is min-max normalised
per image to 8 bits and replicated to three channels, so the depth view fits the same
shard contract and the same classifiers as rgb.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm


def load_depth_model(name_or_path: str | os.PathLike[str], device: str = "cpu") -> tuple[Any, Any]:
    """Model and image processor from a hub id or a local directory (``from_pretrained``);
    depth jobs pass ``resources/weights/<id>``, which ``snakemake weights`` filled."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(name_or_path)
    model = AutoModelForDepthEstimation.from_pretrained(name_or_path).to(device).eval()
    return model, processor


def minmax_uint8(depth: torch.Tensor) -> np.ndarray:
    """Per-image min-max of (N, H, W) depth to uint8 (N, H, W, 3); flat maps become zeros."""
    flat = depth.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    hi = flat.max(dim=1).values[:, None, None]
    scaled = (depth - lo) / (hi - lo).clamp_min(1e-12)
    arr = (scaled.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return np.repeat(arr[..., None], 3, axis=-1)


@torch.no_grad()
def depth_maps(
    model: Any, processor: Any, images: np.ndarray, batch_size: int = 32, device: str = "cpu"
) -> np.ndarray:
    """(N, H, W, 3) uint8 images -> (N, H, W, 3) uint8 depth views at the input size."""
    out = []
    h, w = images.shape[1:3]
    for start in tqdm(range(0, len(images), batch_size), desc="depth", mininterval=10):
        batch = list(images[start : start + batch_size])
        inputs = processor(images=batch, return_tensors="pt").to(device)
        pred = model(**inputs).predicted_depth  # (B, h', w')
        pred = F.interpolate(
            pred[:, None].float(), size=(h, w), mode="bicubic", align_corners=False
        )
        out.append(minmax_uint8(pred[:, 0].cpu()))
    return np.concatenate(out)
