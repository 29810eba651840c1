rule train_generator:
    """The demo's generator: a class-conditional DDPM trained on the real digits train split."""
    input:
        get_real_train_shards,
    output:
        directory(f"{R}/generators/digits-ddpm/model"),
    log:
        f"{R}/logs/train_generator/digits-ddpm.log",
    benchmark:
        f"{R}/benchmarks/train_generator/digits-ddpm.tsv"
    priority: 50
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("train_generator")
    params:
        ddpm=config.get("digits_ddpm", {}),
        seed=config["seed"],
    script:
        "../scripts/train_generator.py"


rule download_weights:
    """Fetch a hub generator's weights (run on a login node with internet; token from HF_TOKEN)."""
    output:
        touch("resources/weights/{generator}/.complete"),
    log:
        "logs/download_weights/{generator}.log",
    localrule: True
    conda:
        "../../envs/t2i.yaml"
    params:
        spec=get_registry_spec,
    script:
        "../scripts/download_weights.py"


rule generate:
    """One synthetic shard: a slice of the prompt table through the generator, seeded per row."""
    input:
        prompts=f"{R}/prompts/{{synth}}/{{split}}.parquet",
        model=get_generator_model,
    output:
        f"{R}/data/{{synth}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/generate/{{synth}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/generate/{{synth}}/{{split}}/{{shard}}.tsv"
    conda:
        "../../envs/t2i.yaml"
    threads: threads_for("generate")
    params:
        spec=get_generator_spec_of_synth,
        shard_size=config["synthetic"]["shard_size"],
        config={"data": class_settings()},
    script:
        "../scripts/generate.py"


rule weights:
    """Target: download every hub generator of the config (`snakemake --cores 1 weights`)."""
    input:
        get_weight_flags,
    localrule: True
