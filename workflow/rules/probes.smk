# A probe job covers one split: its shards go to a directory with the same shard names.
# Per-split jobs keep the paper DAG small (a job per shard would add ~10k cheap jobs).


rule frequency_probe:
    """Low- or high-pass filter a split (FFT mask, cutoff = band edge as a fraction of Nyquist),
    stored with probes.<name>.bits bits a channel (16: .npy rows, 8: PNG)."""
    input:
        get_split_shards,
    output:
        directory(P.probe_view("{fprobe}")),
    log:
        P.log("frequency_probe/{fprobe}/{dataset}/{split}"),
    benchmark:
        P.benchmark("frequency_probe/{fprobe}/{dataset}/{split}")
    conda:
        "../../envs/torch.yaml"
    params:
        probe=get_frequency_probe_settings,
    script:
        "../scripts/frequency_probe.py"


rule depth_probe:
    """Depth Anything V2 maps of a split, min-max to 8 bits and replicated to 3 channels."""
    input:
        shards=get_split_shards,
        model=get_depth_weights,
    output:
        directory(P.probe_view("{dprobe}")),
    log:
        P.log("depth_probe/{dprobe}/{dataset}/{split}"),
    benchmark:
        P.benchmark("depth_probe/{dprobe}/{dataset}/{split}")
    conda:
        "../../envs/torch.yaml"
    threads: threads_for("depth_probe")
    params:
        probe=get_depth_probe_settings,
    script:
        "../scripts/depth_probe.py"
