"""The digits captioner, its caption table, and the stand-in scores built on it."""

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import write_split

from synth2real.captions import digits as cd
from synth2real.captions.store import CAPTION_COLUMNS
from synth2real.data.digits import CLASS_NAMES, load_digits_array, split_indices, upscale
from synth2real.metrics.stand_ins import caption_score, judge_adherence
from synth2real.prompts.tables import caption_prompt_rows
from synth2real.shards import decode_images, write_shard


def stroke(angle_deg, thickness=1, size=16):
    """A vertical bar through the centre, its top rotated right by ``angle_deg``."""
    im = np.zeros((size, size))
    for row in range(size):
        dx = (size / 2 - row) * np.tan(np.radians(angle_deg))
        col = int(round(size / 2 + dx))
        im[row, max(0, col - thickness) : col + thickness] = 1.0
    return im


def test_measure_reads_slant_weight_and_width():
    upright, right, left = cd.measure(np.stack([stroke(0), stroke(20), stroke(-20)]))
    assert right[1] > 0.2 and left[1] < -0.2 and abs(upright[1]) < 0.05
    thin, thick = cd.measure(np.stack([stroke(0, 1), stroke(0, 3)]))
    assert thick[0] > 2 * thin[0]  # weight
    assert thick[2] > thin[2]  # width
    # Resolution-free: an 8 px digit and its 16 px upscale measure alike.
    x, _ = load_digits_array()
    small, big = cd.measure(x[:50]), cd.measure(upscale(x[:50], 16) / 255.0)
    assert np.abs(small[:, 1:] - big[:, 1:]).max() < 0.06


def test_every_caption_parses_back_to_its_bins():
    for combo in itertools.product(range(3), repeat=len(cd.ATTRIBUTES)):
        text = cd.caption_words(np.array([combo]))[0]
        assert cd.parse_caption(f"three, {text}") == list(combo)
    assert cd.parse_caption("three") == [None] * len(cd.ATTRIBUTES)


def digit_splits(tmp_path, seed=0):
    """Real digits shards (16 px) of train 30 / test 10 per class, as the workflow writes."""
    x, y = load_digits_array()
    idx = split_indices(y, {"test": 10, "train": 30}, seed)
    out = {}
    for split, rows in idx.items():
        path = write_split(tmp_path / f"{split}.parquet", upscale(x[rows], 16), y[rows], split)
        out[split] = [path]
    return out


def test_caption_tables_have_the_captioners_columns_and_feed_the_prompts(tmp_path):
    shards = digit_splits(tmp_path)
    outputs = {s: tmp_path / f"captions-{s}.parquet" for s in shards}
    assert cd.caption_splits(shards, outputs) == {"test": 100, "train": 300}
    train = pq.read_table(outputs["train"])
    assert tuple(train.column_names) == CAPTION_COLUMNS
    # Tertiles per class: each word of each attribute is used about a third of the time.
    words = [cd.parse_caption(c) for c in train.column("caption").to_pylist()]
    counts = np.array([np.bincount(col, minlength=3) for col in np.array(words).T])
    assert counts.min() >= 80 and counts.max() <= 120
    classes = [
        {"class_id": f"c{i}", "label": i, "class_name": n} for i, n in enumerate(CLASS_NAMES)
    ]
    rows = caption_prompt_rows(classes, train)
    assert rows[0]["prompt"].startswith("zero, ") and len(rows) == 300
    assert cd.read_thresholds(outputs["test"]) == cd.read_thresholds(outputs["train"])


def test_caption_agreement_is_one_for_real_digits_and_chance_when_shuffled(tmp_path):
    shards = digit_splits(tmp_path)
    outputs = {s: tmp_path / f"captions-{s}.parquet" for s in shards}
    cd.caption_splits(shards, outputs)
    table = pq.read_table(shards["train"][0])
    images = decode_images(table) / 255.0
    labels = table.column("label").to_numpy()
    captions = pq.read_table(outputs["train"]).column("caption").to_pylist()
    prompts = [f"{CLASS_NAMES[y]}, {c}" for y, c in zip(labels, captions)]
    thresholds = cd.read_thresholds(outputs["train"])
    assert cd.caption_agreement(images, labels, prompts, thresholds) == 1.0
    shuffled = list(np.random.default_rng(0).permutation(prompts))
    wrong = cd.caption_agreement(images, labels, shuffled, thresholds)
    assert 0.25 < wrong < 0.45
    with pytest.raises(ValueError, match="not caption prompts"):
        cd.caption_agreement(images, labels, [CLASS_NAMES[y] for y in labels], thresholds)

    # The stand-in score reads prompts from a shard, like the workflow's clipscore job.
    write_split(tmp_path / "synth.parquet", (images * 255).round().astype(np.uint8), labels)
    synth = pq.read_table(tmp_path / "synth.parquet").to_pydict()
    synth["prompt"] = prompts
    write_shard(synth, tmp_path / "synth.parquet")
    assert caption_score([tmp_path / "synth.parquet"], outputs["train"])["clipscore"] == 1.0


def test_judge_adherence_recognises_real_digits_and_not_wrong_labels(tmp_path):
    shards = digit_splits(tmp_path)
    good = judge_adherence(shards["train"], shards["test"])
    assert good["adherence"] > 0.9 and good["judge_train_accuracy"] > 0.95
    x, y = load_digits_array()
    idx = split_indices(y, {"test": 10}, 0)["test"]
    wrong = (y[idx] + 1) % 10  # every prompt asks for the next class
    path = write_split(tmp_path / "wrong.parquet", upscale(x[idx], 16), wrong)
    assert judge_adherence(shards["train"], [path])["adherence"] < 0.1
