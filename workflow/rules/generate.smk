rule train_generator:
    """The demo's generator: a class- (and with caption prompts, caption-) conditional DDPM
    trained on the real digits train split."""
    input:
        unpack(get_generator_train_inputs),
    output:
        directory(P.digits_ddpm()),
    log:
        P.log("train_generator/digits-ddpm"),
    benchmark:
        P.benchmark("train_generator/digits-ddpm")
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
    """Fetch one hub model's weights (a generator, CLIP or the depth model) into
    resources/weights/<id>: the one job that reaches the hub (internet; token from HF_TOKEN).
    """
    output:
        weights_flag(),  # JSON: repo_id, revision, the resolved commit
    log:
        "logs/download_weights/{weights}.log",
    localrule: True
    conda:
        "../../envs/t2i.yaml"
    params:
        source=get_weights_source,
    script:
        "../scripts/download_weights.py"


rule generate:
    """One synthetic shard: a slice of the prompt table through the generator, seeded per row."""
    input:
        prompts=P.prompts(),
        model=get_generator_model,
    output:
        P.data_shard("{synth}"),
    log:
        P.log("generate/{synth}/{split}/{shard}"),
    benchmark:
        P.benchmark("generate/{synth}/{split}/{shard}")
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
    """Target: download every hub model the config loads: generators, CLIP, depth
    (`snakemake weights --cores 1`, on a machine with internet)."""
    input:
        get_weights_to_fetch,
    localrule: True
