"""One image through the real-data path and the synthetic-storage path: the same stored bytes.

Both paths are the workflow's own entry functions (``write_real_shard`` on an ILSVRC-style
folder, ``generate_shard`` with a pipeline that returns the same picture), so a difference of
processing between real and synthetic images, which the frequency probes and the spectra would
read as a difference of generator, fails here.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from synth2real.data.real import write_real_shard
from synth2real.generate.pipelines import generate_shard
from synth2real.preprocess import store_image, stored_pixels
from synth2real.registry import normalise_spec
from synth2real.shards import encode_png, read_shard

WNID = "n01443537"
GEN, STORED = 64, 16  # generation resolution and stored side: a 4x downsample, as 1024 -> 256


def _picture() -> np.ndarray:
    """Smooth gradients plus fine texture: energy in every band, so any filter change shows."""
    y, x = np.mgrid[0:GEN, 0:GEN] / GEN
    rng = np.random.default_rng(0)
    base = np.stack([x, y, (x + y) / 2], axis=-1) * 200
    return (base + rng.integers(0, 56, (GEN, GEN, 3))).astype(np.uint8)


def _real_tree(root, picture):
    """One class whose every train and val file is the picture, stored as the JPEG it would be
    in ILSVRC; returns the decoded pixels, i.e. what the real source holds."""
    paths = [root / "train" / WNID / f"{WNID}_{i}.JPEG" for i in range(2)]
    paths.append(root / "val" / WNID / "ILSVRC2012_val_00000001.JPEG")
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(path, quality=90)
    with Image.open(paths[0]) as im:
        return np.asarray(im.convert("RGB"))


class _Pipe:
    """A "generator" whose output is the decoded source picture, as float RGB in [0, 1]."""

    def __init__(self, picture: np.ndarray) -> None:
        self.picture = picture

    def __call__(self, prompt, generator, height, width, output_type, **kwargs):
        assert (height, width) == self.picture.shape[:2] and output_type == "np"
        return type("Out", (), {"images": np.stack([self.picture / 255.0] * len(prompt))})


def test_real_and_synthetic_paths_store_the_same_bytes(tmp_path):
    decoded = _real_tree(tmp_path / "ilsvrc", _picture())
    (tmp_path / "classes.tsv").write_text(f"wnid\tname\n{WNID}\tgoldfish\n")
    data = {
        "source": "imagenet",
        "imagenet_root": str(tmp_path / "ilsvrc"),
        "classes": str(tmp_path / "classes.tsv"),
        "image_size": STORED,
        "splits": {"train": 1, "val": 1, "test": 1},
    }
    write_real_shard(data, "train", 0, 1, 0, tmp_path / "real.parquet")
    entry = {"pipeline": "Fake", "steps": 1, "guidance_scale": 1.0, "resolution": GEN}
    spec = normalise_spec("fake", entry, output_size=STORED)  # the registry's defaults
    row = {"class_id": WNID, "label": 0, "prompt": "goldfish", "seed": 1, "source_id": "s0"}
    generate_shard(
        _Pipe(decoded), spec, [row], tmp_path / "synth.parquet", batch_size=1, progress=False
    )
    real = read_shard(tmp_path / "real.parquet").column("image").to_pylist()
    synth = read_shard(tmp_path / "synth.parquet").column("image").to_pylist()
    assert len(real) == len(synth) == 1
    with Image.open(io.BytesIO(real[0])) as im:
        assert im.format == "PNG" and im.size == (STORED, STORED)
    assert real[0] == synth[0]


def test_resize_is_antialiased():
    # A one-pixel checkerboard has all its energy at Nyquist: an antialiased 2x downsample
    # averages it to flat grey, a naive one (nearest) keeps a single phase, all black or white.
    board = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    small = stored_pixels(np.repeat(board[..., None], 3, axis=2), 16)
    assert small.shape == (16, 16, 3)
    assert abs(small[4:-4, 4:-4].mean() - 127.5) < 10
    assert small[4:-4, 4:-4].std() < 10


def test_stored_size_input_is_stored_as_is():
    """The digits arrive upscaled to their stored size: the path leaves their pixels alone, so
    the demo's shards are the bytes they were before this path existed."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(stored_pixels(image, 16), image)
    assert store_image(image, 16) == encode_png(image)


def test_grey_sources_are_stored_as_rgb():
    # ILSVRC holds a few greyscale JPEGs; a landscape grey image is cropped to the centre
    arr = np.zeros((30, 90), dtype=np.uint8)
    arr[:, 30:60] = 255
    out = stored_pixels(arr, 20)
    assert out.shape == (20, 20, 3) and (out[..., 0] == out[..., 2]).all()
    assert out[:, 5:15].mean() > 200


def test_jpeg_quality_is_a_real_jpeg_at_the_input_resolution():
    """The official code's q95 save: PIL's JPEG at the generation resolution, then the resize."""
    image = _picture()
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    with Image.open(buf) as im:
        expected = stored_pixels(np.asarray(im.convert("RGB")), STORED)
    np.testing.assert_array_equal(stored_pixels(image, STORED, jpeg_quality=95), expected)
    assert not np.array_equal(expected, stored_pixels(image, STORED))
