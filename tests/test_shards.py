"""The dataset contract: lossless PNG (and 16-bit) rows, atomic whole-or-nothing shards."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from synth2real.shards import (
    ShardError,
    chunk_rows,
    decode_image,
    decode_images,
    encode_image,
    encode_png,
    load_split,
    read_images,
    read_shard,
    write_shard,
)

LIB = Path(__file__).resolve().parents[1] / "workflow" / "lib"


def rows(n, seed=0, size=8):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return images, {
        "image": [encode_png(im) for im in images],
        "label": list(range(n)),
        "class_id": [f"c{i}" for i in range(n)],
        "prompt": ["p"] * n,
        "seed": list(range(n)),
        "source_id": [f"s{i}" for i in range(n)],
    }


def test_read_images_reads_the_rows_asked_for(tmp_path):
    images, columns = rows(150)  # three 64-row batches
    write_shard(columns, tmp_path / "s.parquet")
    got = read_images(tmp_path / "s.parquet", [130, 3, 64, 3])
    assert [g.tobytes() for g in got] == [images[i].tobytes() for i in (130, 3, 64, 3)]
    assert read_images(tmp_path / "s.parquet", []) == []
    with pytest.raises(ShardError, match="has no row 150"):
        read_images(tmp_path / "s.parquet", [2, 150])


def test_roundtrip_is_lossless(tmp_path):
    images, cols = rows(5)
    write_shard(cols, tmp_path / "a.parquet")
    back, labels = load_split([tmp_path / "a.parquet"])
    assert np.array_equal(back, images)
    assert labels.tolist() == [0, 1, 2, 3, 4]
    assert os.listdir(tmp_path) == ["a.parquet"]


def test_missing_column_is_named(tmp_path):
    _, cols = rows(2)
    del cols["seed"]
    with pytest.raises(ShardError, match="seed"):
        write_shard(cols, tmp_path / "a.parquet")
    assert not (tmp_path / "a.parquet").exists()


def test_same_rows_give_identical_bytes(tmp_path):
    _, cols = rows(4, seed=3)
    write_shard(cols, tmp_path / "a.parquet")
    write_shard(cols, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_chunk_rows_covers_everything_once():
    ranges = list(chunk_rows(1001, 4))
    assert ranges[0][0] == 0 and ranges[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ShardError):
        list(chunk_rows(10, 0))


def test_failed_write_keeps_old_shard(tmp_path):
    _, cols = rows(3)
    target = tmp_path / "a.parquet"
    write_shard(cols, target)
    before = target.read_bytes()
    bad = dict(cols, label=["not an int"] * 3)
    with pytest.raises((TypeError, ValueError)):  # pyarrow rejects the str labels
        write_shard(bad, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.parquet"]


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import pyarrow.parquet as pq
    sys.path.insert(0, {lib!r})
    from synth2real.shards import encode_png, write_shard

    real_write = pq.ParquetWriter.write_table
    def slow_write(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        print("WRITING", flush=True)
        time.sleep(60)  # the parent kills us here, mid-write
    pq.ParquetWriter.write_table = slow_write

    n = 64
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    write_shard({{"image": [encode_png(i) for i in images], "label": list(range(n)),
                 "class_id": ["c"] * n, "prompt": [""] * n, "seed": list(range(n)),
                 "source_id": [str(i) for i in range(n)]}}, {out!r})
    """
)


def test_shard_killed_mid_write_leaves_nothing(tmp_path):
    out = tmp_path / "split" / "shard-00000.parquet"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(lib=str(LIB), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Neither the shard nor any partial/temp file is left in its directory.
    assert list(out.parent.iterdir()) == []


def test_decode_images_of_grey_png_is_rgb(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4)
    _, cols = rows(1)
    cols["image"] = [encode_png(grey)]
    write_shard(cols, tmp_path / "g.parquet")
    img = decode_images(read_shard(tmp_path / "g.parquet"))[0]
    assert img.shape == (4, 4, 3)
    assert np.array_equal(img[..., 0], grey) and np.array_equal(img[..., 2], grey)


def test_16_bit_rows_round_trip_exactly_and_8_bit_rows_stay_png():
    rng = np.random.default_rng(2)
    deep = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    data = encode_image(deep[:, ::-1])  # a strided view: stored in C order all the same
    assert data == encode_image(np.ascontiguousarray(deep[:, ::-1]))
    back = decode_image(data)
    assert back.dtype == np.uint16 and np.array_equal(back, deep[:, ::-1])
    flat = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert encode_image(flat) == encode_png(flat)  # the rgb codec is unchanged
    assert decode_image(memoryview(encode_png(flat))).dtype == np.uint8
    for bad in (deep[..., 0], deep.astype(np.int32), deep.astype(np.float32)):
        with pytest.raises(ShardError):
            encode_image(bad)
