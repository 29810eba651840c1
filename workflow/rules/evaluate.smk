rule evaluate:
    """Top-1/top-5/per-class accuracy of every model trained on one dataset, on the real test
    split (one job per dataset: see eval_slots in common.smk)."""
    input:
        unpack(get_eval_inputs),
    output:
        **eval_outputs(),
    log:
        P.log("evaluate/{dataset}"),
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_real_model with:
    # Real->Synth: every real-trained model on each synthetic test split of one generator.
    output:
        **eval_outputs(per_generator=True),
    log:
        P.log("evaluate/{dataset}/{generator}"),
    wildcard_constraints:
        dataset=REAL,


rule summarize:
    """Gather every evaluation into summary.csv (one row per trained model x test set)."""
    input:
        get_eval_tables,
    output:
        summary=report(
            P.summary(),
            caption="../report/summary.rst",
            category="Tables",
        ),
        results=P.results_table(),
    log:
        P.log("summarize"),
    conda:
        "../../envs/plot.yaml"
    params:
        synthetic=GRID.synthetic,
    script:
        "../scripts/summarize.py"
