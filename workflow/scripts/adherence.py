"""Judge adherence of a synthetic train set: the digits' stand-in for GenEval."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real.io import write_csv_atomic  # noqa: E402
from synth2real.metrics.stand_ins import ADHERENCE, judge_adherence  # noqa: E402

values = judge_adherence(list(snakemake.input.real), list(snakemake.input.synth))
row = {"dataset": snakemake.wildcards.synth, **values, "measure": ADHERENCE}
write_csv_atomic(pd.DataFrame([row]), snakemake.output[0], float32=True)
log.info("%s", row)
