"""Evaluation rows and the summary tables the figures read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from synth2real.grid import REAL
from synth2real.io import float32_decimal, write_csv_atomic

#: The summary's columns, in order: an interface other tools read.
SUMMARY_COLUMNS = ["train_dataset", "probe", "arch", "test_dataset", "top1"]
DISTRIBUTION_COLUMNS = ["dataset", "precision", "recall", "density", "coverage"]


def evaluate_to_csv(
    model_path: str | os.PathLike[str],
    test_shards: Sequence[str],
    out: str | os.PathLike[str],
    num_classes: int,
    keys: Mapping[str, str],
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate a trained model on test shards and write one CSV row (keys + metrics)."""
    from synth2real.evaluate.predict import evaluate
    from synth2real.shards import load_split
    from synth2real.train.checkpoint import load_classifier, load_eval_transform

    images, labels = load_split(test_shards)
    model = load_classifier(model_path, device)
    transform = load_eval_transform(model_path)  # the recipe's eval resize/crop/normalisation
    result = evaluate(model, images, labels, num_classes, device, transform=transform)
    row = {
        **keys,
        "top1": result["top1"],
        "top5": result["top5"],
        "loss": result["loss"],
        "n": result["n"],
        "per_class": json.dumps(
            {c: float32_decimal(v) for c, v in result["per_class"].items()}, sort_keys=True
        ),
    }
    write_csv_atomic(pd.DataFrame([row]), out, float32=True)
    return row


def direction(train_dataset: str, test_dataset: str) -> str:
    """Name the transfer: real baseline, Synth->Real, Real->Synth (or Synth->Synth)."""
    if train_dataset == REAL:
        return "real" if test_dataset == REAL else "real->synth"
    return "synth->real" if test_dataset == REAL else "synth->synth"


def summarize(
    eval_tables: Sequence[str | os.PathLike[str]],
    synthetic: Mapping[str, tuple[str, str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary with :data:`SUMMARY_COLUMNS`, full results with direction/generator columns)."""
    frames = [pd.read_csv(p) for p in eval_tables]
    if not frames:
        raise ValueError("no evaluation tables to summarise")
    full = pd.concat(frames, ignore_index=True)
    full["direction"] = [direction(a, b) for a, b in zip(full.train_dataset, full.test_dataset)]
    synth_side = full.train_dataset.where(full.train_dataset != REAL, full.test_dataset)
    full["generator"] = [synthetic.get(d, (REAL, ""))[0] for d in synth_side]
    full["prompt_type"] = [synthetic.get(d, ("", ""))[1] for d in synth_side]
    full = full.sort_values(["train_dataset", "probe", "arch", "test_dataset"], ignore_index=True)
    return full[SUMMARY_COLUMNS].copy(), full
