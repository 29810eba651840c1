"""Train one classifier."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.training import Recipe, train_classifier  # noqa: E402

train = {k: v for k, v in snakemake.params.train.items() if k != "recipe"}
recipe = Recipe(**train, seed=snakemake.params.seed, arch_kwargs=snakemake.params.arch_kwargs)
best = train_classifier(
    list(snakemake.input.train),
    list(snakemake.input.val),
    arch=snakemake.wildcards.arch,
    num_classes=snakemake.params.num_classes,
    recipe=recipe,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    checkpoint_path=snakemake.params.checkpoint,
    device=script_setup.device(snakemake.params.config),
)
log.info("best epoch: %s", best)
