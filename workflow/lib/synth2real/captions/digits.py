"""Captions for the embedded default: each real digit described by what it looks like.

The paper's caption prompts come from GPT-4.1-nano describing each real training image. The
digits have no API and no words, so this captioner measures the attributes that separate one
writer's digit from another's (stroke weight, slant, width, height) and bins each into three
words. The bins are per class, at the train split's tertiles: "thick" means thick *for a
seven*, so a caption carries the within-class variation that the class name does not, which
is what the paper's detailed captions add. The same measurement, applied to a generated
image, scores how well it follows its caption (:func:`caption_agreement`, the demo's
stand-in for CLIPScore).

The captions table has the OpenAI captioner's columns and schema
(:data:`synth2real.captions.store.CAPTION_SCHEMA`), so the caption datasets flow through the
same prompts rule: ``"[class], [caption]"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from synth2real.captions.store import CAPTION_SCHEMA, TABLE_METADATA_KEY

#: Attribute name -> its three words, low to high. Order is the caption's word order.
ATTRIBUTES: dict[str, tuple[str, str, str]] = {
    "weight": ("thin strokes", "medium strokes", "thick strokes"),
    "slant": ("slanted left", "upright", "slanted right"),
    "width": ("narrow", "medium width", "wide"),
    "height": ("short", "medium height", "tall"),
}
#: What the ``model`` column says: no model, the measured attributes.
CAPTIONER = "digits-attributes-v1"
INSTRUCTION = "per-class tertiles of stroke weight, slant, width and height"


def measure(images: np.ndarray) -> np.ndarray:
    """Attributes of (N, H, W) or (N, H, W, 3) images in [0, 1] (any size): (N, 4) floats.

    Measured in coordinates normalised to the unit square, so an 8x8 scan and its 16 px
    upscale measure alike: weight is the mean ink, width and height the ink's spread (its
    standard deviation) along x and y, slant the ink's x-y covariance over its y variance
    (positive: the top leans right).
    """
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 4:
        x = x.mean(axis=-1)
    n, h, w = x.shape
    ink = x.sum(axis=(1, 2)) + 1e-9
    ys, xs = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    mx = (x * xs).sum(axis=(1, 2)) / ink
    my = (x * ys).sum(axis=(1, 2)) / ink
    dx, dy = xs[None] - mx[:, None, None], ys[None] - my[:, None, None]
    vx = (x * dx**2).sum(axis=(1, 2)) / ink
    vy = (x * dy**2).sum(axis=(1, 2)) / ink
    cxy = (x * dx * dy).sum(axis=(1, 2)) / ink
    # y grows downwards: a top leaning right has x falling as y grows, so flip the sign.
    slant = -cxy / (vy + 1e-9)
    return np.stack([x.mean(axis=(1, 2)), slant, np.sqrt(vx), np.sqrt(vy)], axis=1)


def fit_thresholds(values: np.ndarray, labels: np.ndarray) -> dict[str, list[list[float]]]:
    """Per class, each attribute's two tertile edges: ``{class: [[lo, hi] per attribute]}``."""
    out = {}
    for label in np.unique(labels):
        edges = np.quantile(values[labels == label], [1 / 3, 2 / 3], axis=0)  # (2, A)
        out[str(int(label))] = edges.T.tolist()
    return out


def bins(values: np.ndarray, labels: np.ndarray, thresholds: Mapping[str, Any]) -> np.ndarray:
    """Each image's bin (0, 1, 2) per attribute, against its class's edges: (N, A) ints."""
    edges = np.asarray([thresholds[str(int(label))] for label in labels])  # (N, A, 2)
    return (values[..., None] > edges).sum(axis=-1)


def caption_words(binned: np.ndarray) -> list[str]:
    """The caption of each row of bins: one word group per attribute, comma-separated."""
    words = list(ATTRIBUTES.values())
    return [", ".join(words[a][int(b)] for a, b in enumerate(row)) for row in binned]


def parse_caption(text: str) -> list[int | None]:
    """The bin of each attribute named in a prompt (None where it names none).

    The inverse of :func:`caption_words`, so the caption-conditioned generator reads the
    same prompt strings the prompts rule writes. Whole comma-separated parts are matched, so
    "medium width" is never read as "medium strokes" or "wide".
    """
    parts = [p.strip() for p in text.split(",")]
    found: list[int | None] = []
    for words in ATTRIBUTES.values():
        hit = [i for i, word in enumerate(words) if word in parts]
        found.append(hit[0] if hit else None)
    return found


def caption_table(
    image_ids: Sequence[str],
    class_ids: Sequence[str],
    captions: Sequence[str],
    thresholds: Mapping[str, Any],
) -> pa.Table:
    """The captions table, with the OpenAI captioner's columns; the edges in its metadata."""
    n = len(image_ids)
    columns = {
        "image_id": list(image_ids),
        "class_id": list(class_ids),
        "model": [CAPTIONER] * n,
        "instruction_hash": [""] * n,
        "caption": list(captions),
        "input_tokens": [0] * n,
        "output_tokens": [0] * n,
        "mode": ["local"] * n,
        "attempts": [1] * n,
        "created_at": [""] * n,
    }
    meta = {"instruction": INSTRUCTION, "settings": {"model": CAPTIONER}, "thresholds": thresholds}
    schema = CAPTION_SCHEMA.with_metadata({TABLE_METADATA_KEY: json.dumps(meta).encode()})
    return pa.table(columns, schema=schema)


def read_thresholds(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The per-class edges a digits caption table was written with."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if TABLE_METADATA_KEY not in meta:
        raise ValueError(f"{path} is not a captions table")
    return json.loads(meta[TABLE_METADATA_KEY])["thresholds"]


def caption_agreement(
    images: np.ndarray,
    labels: np.ndarray,
    prompts: Sequence[str],
    thresholds: Mapping[str, Any],
) -> float:
    """Share of the attributes a prompt names that its image shows (chance: 1/3).

    The demo's stand-in for CLIPScore: how well what was generated agrees with the caption
    that asked for it, measured with the captioner's own ruler.
    """
    got = bins(measure(images), labels, thresholds)
    hits = total = 0
    for row, prompt in zip(got, prompts):
        for b, want in zip(row, parse_caption(prompt)):
            if want is not None:
                hits += int(b == want)
                total += 1
    if total == 0:
        raise ValueError("no prompt names an attribute: not caption prompts")
    return hits / total


def caption_splits(
    shards: Mapping[str, Sequence[str | os.PathLike[str]]],
    outputs: Mapping[str, str | os.PathLike[str]],
) -> dict[str, int]:
    """Caption each split's real shards into its table; the bin edges come from ``train``.

    Returns the number of images captioned per split. The edges are fit on train alone, so a
    held-out caption describes its image on the train split's scale.
    """
    from synth2real.io import write_table_atomic
    from synth2real.shards import decode_images, read_shards

    tables = {
        s: read_shards(list(p), ["image", "label", "class_id", "source_id"])
        for s, p in shards.items()
    }
    measured = {s: measure(decode_images(t) / 255.0) for s, t in tables.items()}
    labels = {s: t.column("label").to_numpy() for s, t in tables.items()}
    thresholds = fit_thresholds(measured["train"], labels["train"])
    for split, table in tables.items():
        words = caption_words(bins(measured[split], labels[split], thresholds))
        ids = [str(v) for v in table.column("source_id").to_pylist()]
        class_ids = [str(v) for v in table.column("class_id").to_pylist()]
        write_table_atomic(caption_table(ids, class_ids, words, thresholds), outputs[split])
    return {s: t.num_rows for s, t in tables.items()}
