"""Evaluate one trained model on one test split."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.evaluate.evaluation import evaluate_to_csv  # noqa: E402

wc = snakemake.wildcards
row = evaluate_to_csv(
    snakemake.input.model,
    list(snakemake.input.test),
    snakemake.output[0],
    num_classes=snakemake.params.num_classes,
    keys={
        "train_dataset": wc.dataset,
        "probe": wc.probe,
        "arch": wc.arch,
        "test_dataset": wc.test_dataset,
    },
    device=script_setup.device(snakemake.config),
)
log.info("%s", row)
