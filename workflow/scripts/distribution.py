"""Precision/recall/density/coverage of one synthetic dataset against real (global + per class)."""

import script_setup

log = script_setup.init(snakemake)  # NumPy alone: the engine's CPU backend needs no torch

import pandas as pd  # noqa: E402

from synth2real import compute_prdc  # noqa: E402
from synth2real.io import write_csv_atomic  # noqa: E402
from synth2real.metrics.features import load_features  # noqa: E402
from synth2real.metrics.prdc import per_class_prdc  # noqa: E402

metrics = snakemake.params.metrics
k, distance = metrics["nearest_k"], metrics["distance"]
real, real_labels = load_features(snakemake.input.real)
fake, fake_labels = load_features(snakemake.input.fake)
values = compute_prdc(real, fake, nearest_k=k, distance=distance, workers=snakemake.threads)
row = {"dataset": snakemake.wildcards.synth, **{k_: float(v) for k_, v in values.items()}}
write_csv_atomic(pd.DataFrame([row]), snakemake.output.summary, float32=True)
per_class = pd.DataFrame(
    per_class_prdc(real, real_labels, fake, fake_labels, nearest_k=k, distance=distance)
)
per_class.insert(0, "dataset", snakemake.wildcards.synth)
write_csv_atomic(per_class, snakemake.output.per_class, float32=True)
log.info("%s", row)
