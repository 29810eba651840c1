"""Evaluate trained models on their test splits: one CSV per output.

Rules evaluate and evaluate_real_model score several models in one job: output
``<probe>/<arch>/<tag>`` is model ``model:<probe>/<arch>`` on split ``test:<probe>/<tag>``
(common.smk, eval_slots). Rule evaluate_ipc scores one model (input ``model``) on one split
(input ``test``). An output's file name is its test set (``<test_dataset>.csv``).
"""

from pathlib import Path

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.evaluate.evaluation import evaluate_to_csv  # noqa: E402

wc = snakemake.wildcards
named = dict(snakemake.output.items())
if named:  # (output, probe, arch, model, test shards)
    jobs = [
        (out, probe, arch, snakemake.input.get(f"model:{probe}/{arch}"),
         snakemake.input.get(f"test:{probe}/{tag}"))
        for key, out in named.items()
        for probe, arch, tag in [key.split("/")]
    ]  # fmt: skip
else:
    jobs = [(snakemake.output[0], wc.probe, wc.arch, snakemake.input.model, snakemake.input.test)]
device = script_setup.device(snakemake.config)
for out, probe, arch, model, shards in jobs:
    row = evaluate_to_csv(
        model,
        list(shards),
        out,
        num_classes=snakemake.params.num_classes,
        keys={
            "train_dataset": wc.dataset,
            "probe": probe,
            "arch": arch,
            "test_dataset": Path(out).stem,
        },
        device=device,
    )
    log.info("%s", row)
