"""Fig. 7's data: nested random subsets per class of a train split, and reduced-CPC prompt tables.

The scaling curve trains the same recipe on growing subsets of one train split. A subset is a
seeded random sample per class, as the official code's ``random.sample`` is, so a point does
not see only the rows that happen to come first (for a CPC dataset, whose rows are
caption-major, the first n rows of a class hold only n / images_per_caption captions). Unlike
the official code the samples are nested: each class's rows are put in one seeded order and
the subset at n images per class is its first n, so the point at 50 sees exactly the images
the point at 100 sees first and the curve measures data quantity, not a fresh draw.

The order spreads over prompts: every distinct prompt (caption) of a class comes once, in a
seeded random order, before any comes a second time. So each caption of a class is equally
likely at every n, and a subset of n images holds min(n, captions) distinct captions; for
class-name datasets (one prompt per class) and real data (no prompt) it is a plain random
permutation. The seed is derived from (base seed, dataset, class), never from n, the shard
layout or the row order (rows are keyed by ``source_id``), so a subset is the same on every
machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synth2real.io import write_table_atomic
from synth2real.prompts.tables import caption_prompts
from synth2real.seeding import rng
from synth2real.shards import chunk_rows, read_shard, shard_files


def spread_order(prompts: Sequence[str], generator: np.random.Generator) -> np.ndarray:
    """A random order of rows in which no prompt repeats before every prompt has come once.

    Each distinct prompt gets a random rank and its rows a random order; rows are then sorted
    by (how many rows of their prompt precede them, their prompt's rank). Any prefix of the
    order is therefore a uniform choice of prompts, as many distinct ones as it can hold.
    Positions refer to ``prompts``; ties cannot occur.
    """
    unique, group = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
    group = group.reshape(-1)
    prompt_rank = generator.permutation(len(unique))
    within = generator.permutation(len(group))  # random order of rows inside each prompt
    by_prompt = np.lexsort((within, group))
    repeat = np.empty(len(group), dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(group[by_prompt])) + 1]
    sizes = np.diff(np.r_[starts, len(group)])
    repeat[by_prompt] = np.arange(len(group)) - np.repeat(starts, sizes)
    return np.lexsort((prompt_rank[group], repeat))


def nested_sample(table: pa.Table, n: int, base_seed: int, dataset: str) -> np.ndarray:
    """Indices (ascending) of ``n`` rows per class of ``table``: the first ``n`` of each
    class's :func:`spread_order`, seeded by (``base_seed``, ``dataset``, class id).

    ``table`` needs ``class_id``, ``prompt`` and ``source_id``. Raises when a class has fewer
    than ``n`` rows: a short class would silently make a curve point with fewer images than
    its x value says.
    """
    cols = table.select(["class_id", "prompt", "source_id"]).to_pydict()
    by_class: dict[str, list[int]] = {}
    for i, c in enumerate(cols["class_id"]):
        by_class.setdefault(str(c), []).append(i)
    short = {c: len(rows) for c, rows in by_class.items() if len(rows) < n}
    if short:
        raise ValueError(f"classes with fewer than {n} rows: {short}")
    keep: list[int] = []
    for class_id, rows in by_class.items():
        rows = sorted(rows, key=lambda i: (str(cols["source_id"][i]), i))
        order = spread_order(
            [cols["prompt"][i] or "" for i in rows], rng(base_seed, "ipc-subset", dataset, class_id)
        )
        keep += [rows[j] for j in order[:n]]
    return np.sort(np.asarray(keep, dtype=np.int64))


def write_ipc_subset(
    shards: Sequence[str | os.PathLike[str]],
    n_per_class: int,
    out_dir: str | os.PathLike[str],
    shard_size: int,
    base_seed: int,
    dataset: str,
) -> list[Path]:
    """Write :func:`nested_sample`'s ``n_per_class`` rows per class of a split as shards.

    Rows keep their split order and every column (prompt, seed, source id), so a subset
    shard is a dataset shard like any other and trains through the same code. Each shard is
    written atomically.
    """
    table = pa.concat_tables([read_shard(p) for p in shard_files(shards)])
    keep = nested_sample(table, n_per_class, base_seed, dataset)
    subset = table.take(pa.array(keep))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, -(-subset.num_rows // shard_size))
    outs = []
    for i, (start, stop) in enumerate(chunk_rows(subset.num_rows, n_shards)):
        outs.append(
            write_table_atomic(
                subset.slice(start, stop - start), out_dir / f"shard-{i:05d}.parquet"
            )
        )
    return outs


def cpc_prompt_table(
    classes: Sequence[Mapping[str, Any]],
    captions: str | os.PathLike[str],
    dataset: str,
    base_seed: int,
    captions_per_class: int,
    images_per_caption: int,
) -> pa.Table:
    """Train prompts of a reduced captions-per-class dataset (paper Fig. 7: 100 CPC x 5).

    The first ``captions_per_class`` captions of each class (image-id order, as for the full
    caption dataset), each used ``images_per_caption`` times with its own row seed.
    """
    return caption_prompts(
        classes,
        pq.read_table(captions),
        dataset,
        "train",
        base_seed,
        images_per_class=captions_per_class * images_per_caption,
        captions_per_class=captions_per_class,
        images_per_caption=images_per_caption,
    )
