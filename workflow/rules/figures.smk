rule figures:
    """Every summary figure of the paper (Fig. 1, 3, 4, 5, 6, 7) from the run's tables."""
    input:
        **get_figure_inputs(),
    output:
        **figure_outputs(),
    log:
        P.log("figures"),
    conda:
        "../../envs/plot.yaml"
    params:
        **figure_params(),
        names=list(FIGURES),
    script:
        "../scripts/figures.py"


rule results_markdown:
    """Every number behind the figures as one Markdown document."""
    input:
        **get_markdown_inputs(),
    output:
        report(
            P.results_markdown(),
            caption="../report/results_md.rst",
            category="Tables",
        ),
    log:
        P.log("results_markdown"),
    conda:
        "../../envs/plot.yaml"
    params:
        **figure_params(),
    script:
        "../scripts/results_markdown.py"


rule generator_page:
    """One generator's page: every figure with its points highlighted, its rows, its samples.

    Declared inputs are only this generator's results and the real baseline, so building a
    page runs only this generator's missing jobs (and the shared real-data ones). Other
    generators are drawn in grey from whatever of their results exist on disk when the page
    is built (read, not declared: they neither trigger their jobs nor a rebuild of the page).
    """
    input:
        unpack(get_page_inputs),
    output:
        **page_outputs(),
    log:
        P.log("generator_page/{generator}"),
    conda:
        "../../envs/plot.yaml"
    params:
        **figure_params(),
        context=get_page_context,
        names=list(PAGE_FIGURES),
        spectra=spectra_settings("band"),
    script:
        "../scripts/generator_page.py"


rule samples_table:
    """Paper Table 1: samples of the same classes from real and every generator (one prompt
    type), generators in release order."""
    input:
        get_samples_table_inputs,
    output:
        png=report(
            P.samples_table(),
            caption="../report/samples_table.rst",
            category="Samples",
            subcategory="By generator",
        ),
        pdf=P.samples_table(ext="pdf"),
        csv=P.samples_table(ext="csv"),
    log:
        P.log("samples_table/{prompt_type}"),
    wildcard_constraints:
        prompt_type="classname|caption",
    conda:
        "../../envs/plot.yaml"
    params:
        config=figure_settings("table_classes", "table_samples_per_class"),
        sources=get_samples_table_sources,
        registry=figure_params()["registry"],
        synthetic=GRID.synthetic,
    script:
        "../scripts/samples_table.py"


rule samples_prompts:
    """Paper Table 2: one generator's class-name against caption samples (real on top)."""
    input:
        get_samples_prompts_inputs,
    output:
        png=report(
            P.samples_prompts(),
            caption="../report/samples_prompts.rst",
            category="Generator {generator}",
            subcategory="Samples",
        ),
        pdf=P.samples_prompts(ext="pdf"),
        csv=P.samples_prompts(ext="csv"),
    log:
        P.log("samples_prompts/{generator}"),
    conda:
        "../../envs/plot.yaml"
    params:
        config=figure_settings("table_classes", "table_samples_per_class"),
        sources=get_samples_prompts_sources,
        registry=figure_params()["registry"],
        synthetic=GRID.synthetic,
    script:
        "../scripts/samples_table.py"


rule run_info:
    """The config, the software versions and the weights commits of this run, for the report."""
    input:
        weights=get_weight_flags,
    output:
        config=report(
            P.run_config(),
            caption="../report/run_config.rst",
            category="Run",
        ),
        versions=report(
            P.run_versions(),
            caption="../report/run_versions.rst",
            category="Run",
        ),
    log:
        P.log("run_info"),
    conda:
        "../../envs/plot.yaml"
    params:
        config=config,
        envs=ENV_FILES,
    script:
        "../scripts/run_info.py"


rule sample_grid:
    """Real samples beside one synthetic dataset's samples (train split): the first
    samples_per_class rows of at most table_classes classes, the only rows it reads."""
    input:
        real=get_real_train_shards,
        synth=get_train_shards_of_synth,
    output:
        png=report(
            P.samples(),
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{synth}",
        ),
        pdf=P.samples(ext="pdf"),
        csv=P.samples(ext="csv"),
    log:
        P.log("sample_grid/{synth}"),
    conda:
        "../../envs/plot.yaml"
    params:
        config=figure_settings("samples_per_class", "table_classes"),
    script:
        "../scripts/sample_grid.py"


rule spectra_figure:
    """Every dataset's spectrum beside real's, with fitted power-law slopes."""
    input:
        get_spectra_tables(),
    output:
        png=figure_report(P.figure("spectra"), "spectra"),
        pdf=P.figure("spectra", "pdf"),
        csv=P.figure("spectra", "csv"),
        slopes=P.spectra_slopes(),
    log:
        P.log("spectra_figure"),
    conda:
        "../../envs/plot.yaml"
    params:
        spectra=spectra_settings("band"),
    script:
        "../scripts/spectra_figure.py"


rule probe_views:
    """Paper Fig. 2: one real and one synthetic train image as each probe's models see them."""
    input:
        get_probe_views_inputs,
    output:
        png=figure_report(P.figure("probe_views"), "probe_views"),
        pdf=P.figure("probe_views", "pdf"),
        csv=P.figure("probe_views", "csv"),
    log:
        P.log("probe_views"),
    conda:
        "../../envs/plot.yaml"
    params:
        sources=probe_view_sources(),
        probes=probe_view_settings(),
        labels=probe_view_labels(),
    script:
        "../scripts/probe_views.py"


rule caption_samples:
    """Paper Table 3: the first captions of evenly spaced classes (the Tables 1-2 classes)."""
    input:
        captions=P.captions(),
    output:
        figure_report(P.caption_samples(), "caption_samples"),
    log:
        P.log("caption_samples"),
    conda:
        "../../envs/plot.yaml"
    params:
        config=figure_settings("table_classes", "table_samples_per_class"),
    script:
        "../scripts/caption_samples.py"
