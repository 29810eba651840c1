"""Paper Tables 1-2: sample grids, real on top, then datasets (by release date)."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.paper import table_rows  # noqa: E402
from synth2real.figures.tables import sample_table_of_shards  # noqa: E402
from synth2real.prompts.plan import class_table  # noqa: E402

cfg = snakemake.params.config
sources = snakemake.params.sources
wc = snakemake.wildcards
names = [c["class_name"] for c in class_table(cfg)]
by_generator = "generator" not in wc.keys()  # noqa: SIM118 - Wildcards has no __contains__ by key
rows = table_rows(
    list(sources), snakemake.params.registry, snakemake.params.synthetic, by_generator
)
title = f"{wc.prompt_type} prompts" if by_generator else f"{wc.generator}: prompt types"
pts = sample_table_of_shards(
    [(label, sources[d]) for d, label in rows],
    names,
    cfg["figures"],
    title,
    snakemake.output.png[:-4],
)
log.info("%d cells -> %s", len(pts), snakemake.output.png)
