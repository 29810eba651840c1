"""Precision/recall/density/coverage of one synthetic dataset against real."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

import pandas as pd  # noqa: E402

from synth2real import compute_prdc  # noqa: E402
from synth2real.evaluation import write_csv_atomic  # noqa: E402
from synth2real.features import load_features  # noqa: E402

metrics = snakemake.params.metrics
real, _ = load_features(snakemake.input.real)
fake, _ = load_features(snakemake.input.fake)
values = compute_prdc(real, fake, nearest_k=metrics["nearest_k"], distance=metrics["distance"])
row = {"dataset": snakemake.wildcards.synth, **{k: float(v) for k, v in values.items()}}
write_csv_atomic(pd.DataFrame([row]), snakemake.output[0])
log.info("%s", row)
