"""Feature vectors for distribution metrics, cached per dataset as ``.npz`` (features, labels).

The paper uses CLIP ViT-L/14 image features; the digits demo uses the penultimate layer of the
classifier trained on real digits, a space in which "looks like a real digit of class c" is
exactly what the classifier learned.

The ``.npz`` reader and writer need only NumPy: the distribution job, which reads features,
never imports torch for them (torch is imported by :func:`classifier_features` alone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from synth2real.io import atomic_output


def save_features(path: str | os.PathLike[str], features: np.ndarray, labels: np.ndarray) -> None:
    """Write features and labels to ``path`` (.npz), whole or not at all."""
    if len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    with atomic_output(path) as fh:
        np.savez(fh, features=features.astype(np.float32), labels=labels.astype(np.int64))


def load_features(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) float32 and labels (N,) int64, as :func:`save_features` wrote them."""
    with np.load(path) as blob:
        return blob["features"], blob["labels"]


def classifier_features(
    model_path: str | os.PathLike[str],
    shards: Sequence[str],
    device: str = "cpu",
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate-layer features (N, D) of a trained classifier, and the labels."""
    import torch

    from synth2real.shards import load_split
    from synth2real.train.architectures import features as penultimate
    from synth2real.train.checkpoint import load_classifier, load_eval_transform

    model = load_classifier(model_path, device)
    to_input = load_eval_transform(model_path)  # the input the model was trained on
    images, labels = load_split(shards)
    x = torch.from_numpy(images)
    with torch.no_grad():
        out = [
            penultimate(model, to_input(x[i : i + batch_size]).to(device)).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out).numpy(), labels
