rule evaluate:
    """Top-1/top-5/per-class accuracy of one trained model on one dataset's test split."""
    input:
        model=P.model(),
        test=get_test_shards,
    output:
        P.eval_csv(),
    log:
        P.log("evaluate/{dataset}/{probe}/{arch}/{test_dataset}"),
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
        config=config_subset("device"),
    script:
        "../scripts/evaluate.py"


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
