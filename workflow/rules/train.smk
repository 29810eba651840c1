rule train_classifier:
    """Train one classifier on one dataset's probe view; keeps the lowest-val-loss weights."""
    input:
        unpack(get_train_inputs),
    output:
        model=P.model(),
        history=P.history(),
    log:
        P.log("train_classifier/{dataset}/{probe}/{arch}"),
    benchmark:
        P.benchmark("train_classifier/{dataset}/{probe}/{arch}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("train_classifier")
    resources:
        slurm_extra=get_train_slurm_extra,
    params:
        train=result_settings("train"),
        arch_kwargs=get_arch_kwargs,
        num_classes=GRID.num_classes,
        seed=get_train_seed,
        probe_transform=get_probe_transform,
        checkpoint=P.checkpoint(),
    script:
        "../scripts/train_classifier.py"
