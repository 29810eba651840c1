"""Fig. 7's data: the first n images per class of a train split, and reduced-CPC prompt tables.

The scaling curve trains the same recipe on growing prefixes of one synthetic train split, so
a point at 50 images per class sees exactly the images the point at 100 sees first: the curve
measures data quantity, not a fresh draw of data. "First" is in row order, which the prompt
table fixes (class-major, seeded per row), so a subset is the same on every machine.
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
from synth2real.shards import chunk_rows, read_shard, shard_files


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` rows of every label, in row order.

    Raises when a class has fewer than ``n`` rows: a short class would silently make a curve
    point with fewer images than its x value says.
    """
    labels = np.asarray(labels)
    seen: dict[int, int] = {}
    keep = []
    for i, c in enumerate(labels.tolist()):
        if seen.get(c, 0) < n:
            seen[c] = seen.get(c, 0) + 1
            keep.append(i)
    short = {c: k for c, k in seen.items() if k < n}
    if short:
        raise ValueError(f"classes with fewer than {n} rows: {short}")
    return np.asarray(keep, dtype=np.int64)


def write_ipc_subset(
    shards: Sequence[str | os.PathLike[str]],
    n_per_class: int,
    out_dir: str | os.PathLike[str],
    shard_size: int,
) -> list[Path]:
    """Write the first ``n_per_class`` rows per class of a split as shards in ``out_dir``.

    Every column is kept (prompt, seed, source id), so a subset shard is a dataset shard like
    any other and trains through the same code. Each shard is written atomically.
    """
    tables = [read_shard(p) for p in shard_files(shards)]
    table = pa.concat_tables(tables)
    keep = first_per_class(table.column("label").to_numpy(), n_per_class)
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
