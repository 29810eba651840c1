"""Benchmark the training input pipeline: Parquet PNG shards (decoded per image or from the
node-local decoded cache) vs ImageFolder JPEGs.

Can DataLoader workers decode and augment fast enough to keep a GPU busy? Every loader yields
the same generated 256x256 images as uint8 tensors and feeds them through the *training*
path's seeded per-image augmentation (``synth2real.train.augment``; default ``official_rgb``:
RandomResizedCrop 224 bicubic + flip + one of grayscale/solarize/blur + colour jitter +
ImageNet normalisation; ``--augment official_depth`` is crop + flip only):

- ``shards``: :class:`synth2real.train.loader.ShardImageDataset` over Parquet shards of PNG rows
  (the dataset contract), decoding each PNG per item;
- ``shards-cache``: the same shards through :func:`synth2real.train.loader.build_decoded_cache`
  (decoded once into a uint8 ``.npy`` memmap; ``train.decoded_cache``), timed after the build;
- ``imagefolder``: torchvision ``ImageFolder`` over the same images saved as JPEG quality 95
  (what the official code and most ImageNet pipelines decode).

Each (loader, workers) runs one pass over the N images (batch 64, shuffled) after one warm-up
batch. Per-worker throughput (images/s divided by max(1, workers)) times 16 is compared with
what a GPU consumes: ResNet-50 at about 3,000 img/s and ViT-Ti at about 4,600 img/s. That
extrapolation assumes 16 real cores; on a shared machine the per-worker figure is a floor.

    python tools/bench_loader.py                 # 2,000 images, workers 0 1 2
    python tools/bench_loader.py --n 32 --workers 0
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "lib"))

import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torchvision import datasets  # noqa: E402
from torchvision.transforms.v2 import functional as TF  # noqa: E402

from synth2real.shards import chunk_rows, encode_png, write_shard  # noqa: E402
from synth2real.train.augment import AUGMENTS, SeededTransform, TransformSpec, train_transform  # noqa: E402
from synth2real.train.loader import (  # noqa: E402
    AugmentedDataset,
    DecodedCacheDataset,
    EpochBatchSampler,
    ShardImageDataset,
    build_decoded_cache,
)

SIZE = 256
N_CLASSES = 10
GPU_RATES = {"resnet50": 3000, "vit_tiny": 4600}
TARGET_WORKERS = 16


def make_image(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field plus mild noise: compresses like a photo, not like noise."""
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
    noise = rng.normal(0, 6, smooth.shape)
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def build_data(n: int, tmp: Path, shard_size: int = 500) -> dict[str, Path]:
    """Write the same n images as PNG shards and as an ImageFolder of JPEGs."""
    rng = np.random.default_rng(0)
    images = [make_image(rng) for _ in range(n)]
    labels = [i % N_CLASSES for i in range(n)]
    shard_dir = tmp / "shards"
    n_shards = max(1, -(-n // shard_size))
    for s, (a, b) in enumerate(chunk_rows(n, n_shards)):
        write_shard(
            {
                "image": [encode_png(im) for im in images[a:b]],
                "label": labels[a:b],
                "class_id": [f"c{y}" for y in labels[a:b]],
                "prompt": [""] * (b - a),
                "seed": [0] * (b - a),
                "source_id": [f"bench-{i}" for i in range(a, b)],
            },
            shard_dir / f"shard-{s:05d}.parquet",
        )
    folder = tmp / "folder"
    for i, (im, y) in enumerate(zip(images, labels)):
        path = folder / f"c{y}" / f"{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).save(path, quality=95)
    return {"shards": shard_dir, "imagefolder": folder}


class _TensorFolder(Dataset):
    """ImageFolder (PIL JPEG decode) yielding uint8 CHW tensors like the shard datasets."""

    def __init__(self, root: Path) -> None:
        self.folder = datasets.ImageFolder(str(root))

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label = self.folder[i]
        return TF.pil_to_tensor(image), label


def make_dataset(kind: str, paths: dict[str, Path], augment: str, cache_root: Path) -> Dataset:
    """One of the loaders, wrapped in the training path's seeded per-image augmentation."""
    if kind == "shards":
        source: Dataset = ShardImageDataset([paths["shards"]])
    elif kind == "shards-cache":
        source = DecodedCacheDataset(build_decoded_cache([paths["shards"]], cache_root))
    else:
        source = _TensorFolder(paths["imagefolder"])
    size = 128 if augment == "official_texture" else 224
    spec = TransformSpec(augment=augment, input_size=size, normalize="imagenet")
    return AugmentedDataset(source, SeededTransform(train_transform(spec), seed=0))


def time_loader(dataset: Dataset, workers: int, batch: int = 64) -> tuple[int, int, float]:
    """One shuffled pass: (images seen, images timed, seconds timed).

    The clock starts when the first batch arrives, so worker start-up (fork, imports) is not
    charged to throughput. A pass of a single batch has nothing after it and is timed whole.
    """
    loader = DataLoader(
        dataset,
        batch_sampler=EpochBatchSampler(len(dataset), batch, seed=0),  # type: ignore[arg-type]
        num_workers=workers,
    )
    start = time.perf_counter()
    it = iter(loader)
    first = len(next(it)[1])
    if first == len(dataset):
        return first, first, time.perf_counter() - start
    start = time.perf_counter()
    timed = sum(len(labels) for _, labels in it)
    return first + timed, timed, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Generate the data, time every (loader, workers) pair, print one line each + verdicts."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images to generate (default 2000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--augment", choices=AUGMENTS[1:], default="official_rgb")
    ap.add_argument("--tmp", type=Path, default=None, help="where to write the data")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# load average (1/5/15 min) {load} on {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        paths = build_data(args.n, Path(tmp))
        png_mb = sum(p.stat().st_size for p in paths["shards"].glob("*.parquet")) / 1e6
        jpg_mb = sum(p.stat().st_size for p in paths["imagefolder"].rglob("*.jpg")) / 1e6
        print(
            f"# data: {args.n} images {SIZE}x{SIZE}, shards {png_mb:.1f} MB, "
            f"jpeg {jpg_mb:.1f} MB, decoded cache {args.n * SIZE * SIZE * 3 / 1e6:.1f} MB, "
            f"built in {time.perf_counter() - t0:.1f} s; augment {args.augment}",
            flush=True,
        )
        cache_root = Path(tmp) / "decoded"
        t0 = time.perf_counter()
        build_decoded_cache([paths["shards"]], cache_root)
        build_s = time.perf_counter() - t0
        print(
            f"# decoded cache built once in {build_s:.1f} s "
            f"({args.n / build_s:.0f} img/s, 1 process)",
            flush=True,
        )
        best: dict[str, float] = {}
        for kind in ("shards", "shards-cache", "imagefolder"):
            dataset = make_dataset(kind, paths, args.augment, cache_root)
            for w in args.workers:
                count, timed, secs = time_loader(dataset, w)
                rate = timed / secs
                per_worker = rate / max(1, w)
                best[kind] = max(best.get(kind, 0.0), per_worker)
                print(
                    f"loader={kind} workers={w} images={count} seconds={secs:.3f} "
                    f"images_per_s={rate:.1f} per_worker={per_worker:.1f}",
                    flush=True,
                )
        for kind, per_worker in best.items():
            x16 = per_worker * TARGET_WORKERS
            verdict = " ".join(
                f"{name}@{need}={'yes' if x16 >= need else 'no'}"
                for name, need in GPU_RATES.items()
            )
            print(f"x16 loader={kind} images_per_s={x16:.0f} {verdict}")
        for kind in ("shards", "shards-cache"):
            ratio = best[kind] / best["imagefolder"]
            print(
                f"criterion {kind} >= imagefolder per worker: "
                f"{'yes' if ratio >= 1 else 'no'} ({ratio:.2f}x)"
            )


if __name__ == "__main__":
    main()
