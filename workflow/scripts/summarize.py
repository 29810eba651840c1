"""Gather evaluation rows into summary.csv and tables/results.csv."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.evaluate.evaluation import summarize  # noqa: E402
from synth2real.io import write_csv_atomic  # noqa: E402

summary, full = summarize(list(snakemake.input), snakemake.params.synthetic)
write_csv_atomic(full, snakemake.output.results, float32=True)
write_csv_atomic(summary, snakemake.output.summary, float32=True)
log.info("%d rows", len(summary))
