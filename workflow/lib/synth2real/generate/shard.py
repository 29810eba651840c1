"""Generation glue: pick the loader for a generator family, then write one shard."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synth2real.generate.pipelines import generate_shard, load_pipeline
from synth2real.grid import n_shards
from synth2real.prompts.plan import class_table
from synth2real.prompts.tables import read_prompt_table, shard_rows


def load_generator(
    spec: Mapping[str, Any], model: str | os.PathLike[str], config: Mapping[str, Any], device: str
) -> Any:
    """A pipeline-like callable for ``spec``: the demo's DDPM or any diffusers pipeline.

    ``model`` is the trained-model directory (DigitsDDPM) or the ``.complete`` flag inside a
    downloaded weights directory (hub models).
    """
    model = Path(model)
    if spec["pipeline"] == "DigitsDDPM":
        from synth2real.generate.digits_ddpm import DigitsPipeline

        names = [c["class_name"] for c in class_table(config)]
        return DigitsPipeline.from_pretrained(model, names, int(spec["output_size"]))
    weights = model.parent if model.name == ".complete" else model
    return load_pipeline(spec, weights, device=device)


def generate_dataset_shard(
    spec: Mapping[str, Any],
    model: str | os.PathLike[str],
    prompts: str | os.PathLike[str],
    config: Mapping[str, Any],
    dataset: str,
    split: str,
    shard: int,
    shard_size: int,
    batch_size: int,
    out: str | os.PathLike[str],
    device: str = "cpu",
) -> dict[str, Any]:
    """Generate shard ``shard`` of a split from its prompt table (``shard_size`` rows each)."""
    table = read_prompt_table(prompts)
    rows = shard_rows(table, n_shards(table.num_rows, shard_size), shard)
    pipe = load_generator(spec, model, config, device)
    return generate_shard(
        pipe, spec, rows, out, batch_size, device, dataset=dataset, split=split, shard=shard
    )
