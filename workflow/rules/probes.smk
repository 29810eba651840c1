rule frequency_probe:
    """Low- or high-pass filter one shard (radial FFT mask; cutoff as a fraction of Nyquist)."""
    input:
        f"{R}/data/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    output:
        f"{R}/probes/{{fprobe}}/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/frequency_probe/{{fprobe}}/{{dataset}}/{{split}}/{{shard}}.log",
    conda:
        "../../envs/torch.yaml"
    params:
        probe=get_probe_spec,
    script:
        "../scripts/frequency_probe.py"


rule depth_probe:
    """Depth Anything V2 maps of one shard, min-max to 8 bits and replicated to 3 channels."""
    input:
        f"{R}/data/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    output:
        f"{R}/probes/{{dprobe}}/{{dataset}}/{{split}}/shard-{{shard}}.parquet",
    log:
        f"{R}/logs/depth_probe/{{dprobe}}/{{dataset}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/depth_probe/{{dprobe}}/{{dataset}}/{{split}}/{{shard}}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("depth_probe")
    params:
        probe=get_probe_spec,
        config=config,
    script:
        "../scripts/depth_probe.py"
