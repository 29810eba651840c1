rule extract_features:
    """Feature vectors of a dataset's train split (real-trained classifier or CLIP)."""
    input:
        shards=get_train_shards_of_dataset,
        model=get_feature_model,
    output:
        f"{R}/features/{{dataset}}.npz",
    log:
        f"{R}/logs/extract_features/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/extract_features/{{dataset}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("extract_features")
    params:
        metrics=config["metrics"],
        config=config,
    script:
        "../scripts/extract_features.py"


rule distribution:
    """Precision, recall, density and coverage of one synthetic train set against real train."""
    input:
        real=f"{R}/features/{REAL}.npz",
        fake=f"{R}/features/{{synth}}.npz",
    output:
        f"{R}/metrics/distribution/{{synth}}.csv",
    log:
        f"{R}/logs/distribution/{{synth}}.log",
    benchmark:
        f"{R}/benchmarks/distribution/{{synth}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("distribution")
    params:
        metrics=config["metrics"],
    script:
        "../scripts/distribution.py"


rule gather_distribution:
    """All synthetic datasets' distribution metrics in one table."""
    input:
        get_distribution_tables,
    output:
        report(
            f"{R}/distribution.csv",
            caption="../report/distribution.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/gather_distribution.log",
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/gather_distribution.py"
