# synth2real: do text-to-image models make useful training data?
# Kept thin and cheap to parse: every cluster job re-reads it.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# A --configfile is the whole config: keys it leaves out take their schema defaults, never
# config/config.yaml's values (Snakemake would merge the two, so a config could not drop a
# probe the paper config defines). Without one, the paper config (config/config.yaml next to
# this file) is the config. --config key=value overrides apply on top of either.
if not workflow.overwrite_configfiles:

    configfile: str(Path(workflow.basedir) / "config" / "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/captions.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/figures.smk"


# Aggregators (tables, figures, pages, run info) run inside the controller process, not as
# cluster jobs: each is seconds of CPU work that would otherwise queue as its own SLURM job.
# (captions, download_weights and weights need the internet: `localrule: True` in the rule.)
localrules:
    summarize,
    gather_distribution,
    gather_ipc,
    figures,
    spectra_figure,
    sample_grid,
    samples_table,
    samples_prompts,
    probe_views,
    caption_samples,
    generator_page,
    results_markdown,
    run_info,


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
