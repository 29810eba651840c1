rule extract_features:
    """Feature vectors of a dataset's train split (real-trained classifier or CLIP)."""
    input:
        shards=get_train_shards_of_dataset,
        model=get_feature_model,
    output:
        P.features(),
    log:
        P.log("extract_features/{dataset}"),
    benchmark:
        P.benchmark("extract_features/{dataset}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("extract_features")
    params:
        metrics=feature_settings(),
    script:
        "../scripts/extract_features.py"


use rule extract_features as extract_reference_features with:
    input:
        shards=data_shards(REAL, config["metrics"]["reference"]),
        model=get_feature_model,
    output:
        P.reference_features(config["metrics"]["reference"]),
    log:
        P.log(f"extract_features/real.{config['metrics']['reference']}"),
    benchmark:
        P.benchmark(f"extract_features/real.{config['metrics']['reference']}")


rule distribution:
    """Precision, recall, density and coverage of one synthetic train set against the real
    reference split (metrics.reference: real train as the paper, or images the generator never
    saw)."""
    input:
        real=get_reference_features,
        fake=P.features("{synth}"),
    output:
        summary=P.distribution(),
        per_class=P.distribution_per_class(),
    log:
        P.log("distribution/{synth}"),
    benchmark:
        P.benchmark("distribution/{synth}")
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
            P.distribution_table(),
            caption="../report/distribution.rst",
            category="Tables",
        ),
    log:
        P.log("gather_distribution"),
    conda:
        "../../envs/plot.yaml"
    script:
        "../scripts/gather_distribution.py"


rule spectrum:
    """Radially averaged amplitude spectrum of a dataset's train split, and its power-law slope."""
    input:
        get_train_shards_of_dataset,
    output:
        P.spectrum(),
    log:
        P.log("spectrum/{dataset}"),
    benchmark:
        P.benchmark("spectrum/{dataset}")
    conda:
        "../../envs/torch.yaml"
    params:
        spectra=spectra_settings("n_bins", "max_images"),
    script:
        "../scripts/spectrum.py"


rule clipscore:
    """CLIPScore (ViT-L/14) of a caption dataset's train images against their prompts, or with
    metrics.caption_score: attributes (the digits) its stand-in, caption agreement."""
    input:
        unpack(get_clipscore_inputs),
    output:
        P.clipscore(),
    log:
        P.log("clipscore/{synth}"),
    benchmark:
        P.benchmark("clipscore/{synth}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("clipscore")
    params:
        metrics=clipscore_settings(),
    script:
        "../scripts/clipscore.py"


rule adherence:
    """The digits' stand-in for GenEval (metrics.adherence: judge): how often an independent
    real-trained judge recognises the prompted class in a synthetic train set."""
    input:
        real=get_real_train_shards,
        synth=get_train_shards_of_synth,
    output:
        P.adherence(),
    log:
        P.log("adherence/{synth}"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/adherence.py"
