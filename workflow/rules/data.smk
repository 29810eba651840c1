rule real_data:
    """One shard of the real dataset (digits for the demo, an ImageNet subset for the paper)."""
    input:
        imagenet_checked,
    output:
        P.data_shard(REAL),
    log:
        P.log("real_data/{split}/{shard}"),
    conda:
        "../../envs/torch.yaml"
    threads: 1
    params:
        data=real_data_settings(),
        seed=config["seed"],
        n_shards=get_real_n_shards,
    script:
        "../scripts/real_data.py"
