rule evaluate:
    """Top-1/top-5/per-class accuracy of one synthetic-trained model on the real test split.
    One job per model over all its test sets (here one; see evaluate_real_model), one CSV
    per test set: a job's start-up (Python, torch, the model) outweighs scoring a split.
    """
    input:
        unpack(get_eval_inputs),
    output:
        eval_outputs(synthetic=True),
    log:
        P.log("evaluate/{dataset}/{probe}/{arch}"),
    wildcard_constraints:
        dataset=alternation(GRID.synthetic),
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
        config=config_subset("device"),
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_real_model with:
    # A real-trained model: the real baseline and Real->Synth on every synthetic test split.
    output:
        eval_outputs(synthetic=False),
    wildcard_constraints:
        dataset=alternation([REAL]),


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
