# Fig. 7: accuracy against images per class (IPC), and reduced captions per class (CPC).
# Everything lives under results/<run>/scaling/, apart from the main grid's paths: an IPC
# model trains on the first n images per class of a train split; a CPC dataset is a caption
# dataset with fewer unique captions (each used several times), with a train split only.


rule cpc_prompts:
    """Train prompts of a reduced captions-per-class dataset (e.g. 100 captions x 5 images)."""
    input:
        captions=f"{R}/captions/captions.parquet",
    output:
        f"{R}/scaling/prompts/{{synth}}.parquet",
    log:
        f"{R}/logs/cpc_prompts/{{synth}}.log",
    wildcard_constraints:
        synth=alternation(CPC),
    conda:
        "../../envs/torch.yaml"
    params:
        config={"data": class_settings(), "seed": config["seed"]},
        cpc=get_cpc_spec,
    script:
        "../scripts/cpc_prompts.py"


rule generate_cpc:
    """One train shard of a CPC dataset (same generation code and row seeding as `generate`)."""
    input:
        prompts=f"{R}/scaling/prompts/{{synth}}.parquet",
        model=get_cpc_generator_model,
    output:
        f"{R}/scaling/data/{{synth}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/generate_cpc/{{synth}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/generate_cpc/{{synth}}/{{split}}/{{shard}}.tsv"
    wildcard_constraints:
        synth=alternation(CPC),
        split="train",
    conda:
        "../../envs/t2i.yaml"
    threads: threads_for("generate")
    params:
        spec=get_cpc_generator_spec,
        shard_size=config["synthetic"]["shard_size"],
        config={"data": class_settings()},
    script:
        "../scripts/generate.py"


rule ipc_subset:
    """The first n images per class of a train split (row order), as shards."""
    input:
        get_ipc_subset_input,
    output:
        directory(f"{R}/scaling/subsets/{{dataset}}/ipc{{ipc}}"),
    log:
        f"{R}/logs/ipc_subset/{{dataset}}/ipc{{ipc}}.log",
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
    conda:
        "../../envs/torch.yaml"
    params:
        shard_size=config["synthetic"]["shard_size"],
    script:
        "../scripts/ipc_subset.py"


rule train_ipc:
    """A classifier on an IPC subset: the main grid's training script and recipe."""
    input:
        unpack(get_ipc_train_inputs),
    output:
        model=f"{R}/scaling/models/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}/model.pt",
        history=f"{R}/scaling/models/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}/history.csv",
    log:
        f"{R}/logs/train_ipc/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}.log",
    benchmark:
        f"{R}/benchmarks/train_ipc/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}.tsv"
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
        probe=IPC_PROBE,
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("train_classifier")
    params:
        train=result_settings("train"),
        arch_kwargs=get_arch_kwargs,
        num_classes=GRID.num_classes,
        seed=get_ipc_train_seed,
        probe_transform=get_probe_transform,
        checkpoint=f"{R}/scaling/checkpoints/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}.pt",
    script:
        "../scripts/train_classifier.py"


rule evaluate_ipc:
    """An IPC model on the real test split (the main grid's evaluation script)."""
    input:
        model=f"{R}/scaling/models/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}/model.pt",
        test=get_test_shards,
    output:
        f"{R}/scaling/eval/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}/{{test_dataset}}.csv",
    log:
        f"{R}/logs/evaluate_ipc/{{dataset}}/ipc{{ipc}}/{{probe}}/{{arch}}/{{test_dataset}}.log",
    wildcard_constraints:
        dataset=alternation(SCALING),
        ipc=r"\d+",
        probe=IPC_PROBE,
        test_dataset=REAL,
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("evaluate")
    params:
        num_classes=GRID.num_classes,
    script:
        "../scripts/evaluate.py"


rule gather_ipc:
    """Fig. 7's table: one row per (dataset, images per class)."""
    input:
        get_ipc_eval_tables,
    output:
        f"{R}/tables/ipc.csv",
    log:
        f"{R}/logs/gather_ipc.log",
    conda:
        "../../envs/plot.yaml"
    params:
        entries=ipc_entries(),
    script:
        "../scripts/gather_ipc.py"
