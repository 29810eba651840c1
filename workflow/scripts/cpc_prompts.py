"""Write the train prompt table of a reduced captions-per-class dataset."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.prompts.plan import class_table  # noqa: E402
from synth2real.prompts.tables import write_prompt_table  # noqa: E402
from synth2real.scaling.subsets import cpc_prompt_table  # noqa: E402

cfg = snakemake.params.config
table = cpc_prompt_table(
    class_table(cfg),
    snakemake.input.captions,
    snakemake.wildcards.synth,
    cfg["seed"],
    **snakemake.params.cpc,
)
write_prompt_table(table, snakemake.output[0])
log.info("%d prompt rows -> %s", table.num_rows, snakemake.output[0])
