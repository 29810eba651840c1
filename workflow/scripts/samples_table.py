"""Paper Tables 1-2: sample grids, real on top, then datasets (by release date)."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.paper import table_rows  # noqa: E402
from synth2real.figures.tables import class_grid, pick_samples, table_classes  # noqa: E402
from synth2real.prompts.plan import class_table  # noqa: E402

cfg = snakemake.params.config
sources = snakemake.params.sources
wc = snakemake.wildcards
names = [c["class_name"] for c in class_table(cfg)]
per_class = cfg["figures"]["table_samples_per_class"]
labels = table_classes(len(names), cfg["figures"]["table_classes"])
by_generator = "generator" not in wc.keys()  # noqa: SIM118 - Wildcards has no __contains__ by key
rows = table_rows(
    list(sources), snakemake.params.registry, snakemake.params.synthetic, by_generator
)
picked = [(label, pick_samples(sources[d], labels, per_class)) for d, label in rows]
title = f"{wc.prompt_type} prompts" if by_generator else f"{wc.generator}: prompt types"
pts = class_grid(picked, names, per_class, title, snakemake.output.png[:-4])
log.info("%d cells -> %s", len(pts), snakemake.output.png)
