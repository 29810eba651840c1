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
        metrics=feature_settings(),
    script:
        "../scripts/extract_features.py"


rule distribution:
    """Precision, recall, density and coverage of one synthetic train set against real train."""
    input:
        real=f"{R}/features/{REAL}.npz",
        fake=f"{R}/features/{{synth}}.npz",
    output:
        summary=f"{R}/metrics/distribution/{{synth}}.csv",
        per_class=f"{R}/metrics/distribution/{{synth}}.per_class.csv",
    log:
        f"{R}/logs/distribution/{{synth}}.log",
    benchmark:
        f"{R}/benchmarks/distribution/{{synth}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("distribution")
    params:
        metrics=settings_subset("metrics", "nearest_k", "distance"),
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


rule spectrum:
    """Radially averaged amplitude spectrum of a dataset's train split, and its power-law slope."""
    input:
        get_train_shards_of_dataset,
    output:
        f"{R}/metrics/spectra/{{dataset}}.csv",
    log:
        f"{R}/logs/spectrum/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/spectrum/{{dataset}}.tsv"
    conda:
        "../../envs/torch.yaml"
    params:
        spectra=spectra_settings("n_bins", "max_images"),
    script:
        "../scripts/spectrum.py"


rule clipscore:
    """CLIPScore (ViT-L/14) of a caption dataset's train images against their prompts."""
    input:
        get_train_shards_of_synth,
    output:
        f"{R}/metrics/clipscore/{{synth}}.csv",
    log:
        f"{R}/logs/clipscore/{{synth}}.log",
    benchmark:
        f"{R}/benchmarks/clipscore/{{synth}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("clipscore")
    params:
        metrics=settings_subset("metrics", "clip_model"),
    script:
        "../scripts/clipscore.py"
