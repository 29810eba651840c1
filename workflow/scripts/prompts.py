"""Write the prompt table of one synthetic split."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.prompts.plan import build_prompt_table  # noqa: E402
from synth2real.prompts.tables import write_prompt_table  # noqa: E402

wc = snakemake.wildcards
table = build_prompt_table(
    snakemake.params.config,
    dataset=wc.synth,
    split=wc.split,
    prompt_type=snakemake.params.prompt_type,
    images_per_class=snakemake.params.images_per_class,
    captions=snakemake.input.get("captions"),
)
write_prompt_table(table, snakemake.output[0])
log.info("%d prompt rows -> %s", table.num_rows, snakemake.output[0])
