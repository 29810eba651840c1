rule evaluate:
    """Top-1/top-5/per-class accuracy of one trained model on one dataset's test split."""
    input:
        model=f"{R}/models/{{dataset}}/{{probe}}/{{arch}}/model.pt",
        test=get_test_shards,
    output:
        f"{R}/eval/{{dataset}}/{{probe}}/{{arch}}/{{test_dataset}}.csv",
    log:
        f"{R}/logs/evaluate/{{dataset}}/{{probe}}/{{arch}}/{{test_dataset}}.log",
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
    script:
        "../scripts/evaluate.py"


rule summarize:
    """Gather every evaluation into summary.csv (one row per trained model x test set)."""
    input:
        get_eval_tables,
    output:
        summary=report(
            f"{R}/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
        ),
        results=f"{R}/tables/results.csv",
    log:
        f"{R}/logs/summarize.log",
    conda:
        "../../envs/plot.yaml"
    params:
        synthetic=GRID.synthetic,
    script:
        "../scripts/summarize.py"
