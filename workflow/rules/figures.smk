rule figures:
    """The paper's summary figures (Fig. 1, 4, 5, 6) from summary and distribution tables."""
    input:
        results=f"{R}/tables/results.csv",
        distribution=f"{R}/distribution.csv",
    output:
        **figure_outputs(),
    log:
        f"{R}/logs/figures.log",
    conda:
        "../../envs/plot.yaml"
    params:
        config=config,
        order=GRID.generators,
        names=get_generator_names,
    script:
        "../scripts/figures.py"


rule sample_grid:
    """Real samples beside one synthetic dataset's samples (train split)."""
    input:
        real=get_real_train_shards,
        synth=get_train_shards_of_synth,
    output:
        png=report(
            f"{R}/figures/samples/{{synth}}.png",
            caption="../report/samples.rst",
            category="Samples",
            subcategory="{synth}",
        ),
        pdf=f"{R}/figures/samples/{{synth}}.pdf",
        csv=f"{R}/figures/samples/{{synth}}.csv",
    log:
        f"{R}/logs/sample_grid/{{synth}}.log",
    conda:
        "../../envs/plot.yaml"
    params:
        config=config,
    script:
        "../scripts/sample_grid.py"


rule spectra_figure:
    """Every dataset's spectrum beside real's, with fitted power-law slopes."""
    input:
        expand(f"{R}/metrics/spectra/{{dataset}}.csv", dataset=GRID.datasets),
    output:
        png=report(
            f"{R}/figures/spectra.png",
            caption="../report/spectra.rst",
            category="Frequency",
        ),
        pdf=f"{R}/figures/spectra.pdf",
        csv=f"{R}/figures/spectra.csv",
        slopes=f"{R}/tables/spectra.csv",
    log:
        f"{R}/logs/spectra_figure.log",
    conda:
        "../../envs/plot.yaml"
    params:
        spectra=config["metrics"].get("spectra", {}),
    script:
        "../scripts/spectra_figure.py"
