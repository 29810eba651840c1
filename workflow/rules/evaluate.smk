rule evaluate:
    """Top-1/top-5/per-class accuracy of one trained model on the real test split."""
    input:
        unpack(get_eval_inputs),
    output:
        P.eval_csv(test_dataset=REAL),
    log:
        P.log("evaluate/{dataset}/{probe}/{arch}"),
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_real_model with:
    # Real->Synth: a real-trained model on every synthetic test split of one generator (one
    # CSV each, one job: a job's start-up, Python, torch and the model, outweighs a split).
    output:
        real_model_eval_outputs(),
    log:
        P.log("evaluate/{dataset}/{probe}/{arch}/{generator}"),
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
