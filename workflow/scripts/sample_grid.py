"""Sample grid: real beside one generator, at most figures.table_classes classes."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.tables import sample_grid_of_shards  # noqa: E402
from synth2real.prompts.plan import class_table  # noqa: E402

cfg = snakemake.params.config
sample_grid_of_shards(
    list(snakemake.input.real),
    list(snakemake.input.synth),
    [c["class_name"] for c in class_table(cfg)],
    cfg["figures"],
    snakemake.wildcards.synth,
    snakemake.output.png[:-4],
)
log.info("wrote %s", snakemake.output.png)
