"""Concatenate the per-dataset distribution rows."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real.evaluate.evaluation import DISTRIBUTION_COLUMNS  # noqa: E402
from synth2real.io import write_csv_atomic  # noqa: E402

frame = pd.concat([pd.read_csv(p) for p in snakemake.input], ignore_index=True)
write_csv_atomic(frame[DISTRIBUTION_COLUMNS], snakemake.output[0], float32=True)
log.info("%d rows", len(frame))
