rule train_classifier:
    """Train one classifier on one dataset's probe view; keeps the lowest-val-loss weights."""
    input:
        unpack(get_train_inputs),
    output:
        model=f"{R}/models/{{dataset}}/{{probe}}/{{arch}}/model.pt",
        history=f"{R}/models/{{dataset}}/{{probe}}/{{arch}}/history.csv",
    log:
        f"{R}/logs/train_classifier/{{dataset}}/{{probe}}/{{arch}}.log",
    benchmark:
        f"{R}/benchmarks/train_classifier/{{dataset}}/{{probe}}/{{arch}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("train_classifier")
    params:
        train=result_settings("train"),
        arch_kwargs=get_arch_kwargs,
        num_classes=GRID.num_classes,
        seed=get_train_seed,
        probe_transform=get_probe_transform,
        checkpoint=f"{R}/checkpoints/{{dataset}}/{{probe}}/{{arch}}.pt",
    script:
        "../scripts/train_classifier.py"
