"""Sample grid: real beside one generator."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.tables import sample_grid  # noqa: E402
from synth2real.prompts.plan import class_table  # noqa: E402
from synth2real.shards import load_split  # noqa: E402

cfg = snakemake.params.config
names = [c["class_name"] for c in class_table(cfg)]
sample_grid(
    load_split(list(snakemake.input.real)),
    load_split(list(snakemake.input.synth)),
    names,
    cfg["figures"]["samples_per_class"],
    snakemake.wildcards.synth,
    snakemake.output.png[:-4],
)
log.info("wrote %s", snakemake.output.png)
