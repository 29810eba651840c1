"""Evaluate one trained model on each of its test splits: one CSV per output.

An output's file name is its test set (``<test_dataset>.csv``); that split's shards are the
input of the same name (or ``test`` in a rule with a single test set, e.g. evaluate_ipc).
"""

from pathlib import Path

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.evaluate.evaluation import evaluate_to_csv  # noqa: E402

wc = snakemake.wildcards
for out in snakemake.output:
    test_dataset = Path(out).stem
    shards = snakemake.input.get(test_dataset) or snakemake.input.test
    row = evaluate_to_csv(
        snakemake.input.model,
        list(shards),
        out,
        num_classes=snakemake.params.num_classes,
        keys={
            "train_dataset": wc.dataset,
            "probe": wc.probe,
            "arch": wc.arch,
            "test_dataset": test_dataset,
        },
        device=script_setup.device(snakemake.config),
    )
    log.info("%s", row)
