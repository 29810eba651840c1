"""Shared fixtures: tiny shards of real, labelled images."""

import numpy as np
import pytest

from synth2real.shards import encode_png, write_shard


def make_class_images(n_per_class, n_classes, size, seed):
    """Images whose class is visible: class c is a bright bar at row band c, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    band = max(1, size // n_classes)
    for c in range(n_classes):
        for _ in range(n_per_class):
            im = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            im[c * band : (c + 1) * band] += 150
            images.append(im)
            labels.append(c)
    return np.stack(images), np.array(labels)


def write_split(path, images, labels, prefix="x"):
    write_shard(
        {
            "image": [encode_png(im) for im in images],
            "label": labels.tolist(),
            "class_id": [f"c{y}" for y in labels],
            "prompt": [""] * len(labels),
            "seed": [0] * len(labels),
            "source_id": [f"{prefix}{i}" for i in range(len(labels))],
        },
        path,
    )
    return str(path)


@pytest.fixture
def tiny_splits(tmp_path):
    """train/val/test shards of a 3-class 12x12 toy problem."""
    out = {}
    for k, (split, n) in enumerate((("train", 16), ("val", 6), ("test", 6))):
        images, labels = make_class_images(n, 3, 12, seed=k)
        out[split] = [write_split(tmp_path / f"{split}.parquet", images, labels, split)]
    return out


def pytest_configure(config):
    # One thread per test process: on a busy 2-core machine, torch's default thread pool
    # oversubscribes the cores and tiny models run many times slower.
    import torch

    torch.set_num_threads(1)
