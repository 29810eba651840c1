# Fig. 7: accuracy against images per class (IPC), and reduced captions per class (CPC).
# Everything lives under results/<run>/scaling/, apart from the main grid's paths: an IPC
# model trains on a seeded random sample of n images per class of a train split (nested: the
# sample at n holds every smaller one); a CPC dataset is a caption dataset with fewer unique
# captions (each used several times), with a train split only.


rule cpc_prompts:
    """Train prompts of a reduced captions-per-class dataset (e.g. 100 captions x 5 images)."""
    input:
        captions=P.captions(),
    output:
        P.cpc_prompts(),
    log:
        P.log("cpc_prompts/{synth}"),
    wildcard_constraints:
        synth=alternation(CPC),
    conda:
        "../../envs/torch.yaml"
    params:
        config={"data": class_settings(), "seed": config["seed"]},
        cpc=get_cpc_spec,
    script:
        "../scripts/cpc_prompts.py"


use rule generate as generate_cpc with:
    """One train shard of a CPC dataset (same generation code and row seeding as `generate`)."""
    input:
        prompts=P.cpc_prompts(),
        model=get_cpc_generator_model,
    output:
        P.cpc_shard(),
    log:
        P.log("generate_cpc/{synth}/{split}/{shard}"),
    benchmark:
        P.benchmark("generate_cpc/{synth}/{split}/{shard}")
    wildcard_constraints:
        synth=alternation(CPC),
        split="train",
    params:
        spec=get_cpc_generator_spec,


rule ipc_subset:
    """n images per class of a train split, as shards: a seeded random sample per class,
    nested across n and spread over captions (synth2real.scaling.subsets)."""
    input:
        get_ipc_subset_input,
    output:
        directory(P.ipc_subset()),
    log:
        P.log("ipc_subset/{dataset}/ipc{ipc}"),
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
    conda:
        "../../envs/torch.yaml"
    params:
        shard_size=config["synthetic"]["shard_size"],
        seed=config["seed"],
    script:
        "../scripts/ipc_subset.py"


use rule train_classifier as train_ipc with:
    """A classifier on an IPC subset: the main grid's training script and recipe."""
    input:
        unpack(get_ipc_train_inputs),
    output:
        model=P.ipc_model(),
        history=P.ipc_history(),
    log:
        P.log("train_ipc/{dataset}/ipc{ipc}/{probe}/{arch}"),
    benchmark:
        P.benchmark("train_ipc/{dataset}/ipc{ipc}/{probe}/{arch}")
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
        probe=IPC_PROBE,
    params:
        seed=get_ipc_train_seed,
        checkpoint=P.ipc_checkpoint(),


use rule evaluate as evaluate_ipc with:
    """An IPC model on the real test split (the main grid's evaluation script)."""
    input:
        model=P.ipc_model(),
        test=get_test_shards,
    output:
        P.ipc_eval(),
    log:
        P.log("evaluate_ipc/{dataset}/ipc{ipc}/{probe}/{arch}/{test_dataset}"),
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
        probe=IPC_PROBE,
        test_dataset=REAL,


rule gather_ipc:
    """Fig. 7's table: one row per (dataset, images per class)."""
    input:
        get_ipc_eval_tables,
    output:
        P.ipc_table(),
    log:
        P.log("gather_ipc"),
    conda:
        "../../envs/plot.yaml"
    params:
        entries=ipc_entries(),
    script:
        "../scripts/gather_ipc.py"
