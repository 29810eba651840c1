"""Output paths are interfaces (users, tools and CI read them): pin the ones they read."""

from synth2real.paths import RunPaths, weights_flag

P = RunPaths.of_run("demo")


def test_templates_are_the_rules_wildcard_patterns():
    assert P.data_shard() == "results/demo/data/{dataset}/{split}/shard-{shard}.parquet"
    assert P.eval_csv() == "results/demo/eval/{dataset}/{probe}/{arch}/{test_dataset}.csv"
    assert P.spectrum() == "results/demo/metrics/spectra/{dataset}.csv"
    assert P.page_figure() == "results/demo/generators/{generator}/figures/{name}.png"
    assert P.log("generate/{synth}/{split}/{shard}") == (
        "results/demo/logs/generate/{synth}/{split}/{shard}.log"
    )
    assert weights_flag() == "resources/weights/{weights}/.complete"


def test_concrete_paths_fill_the_same_templates():
    assert (
        P.data_shard("real", "train", "00000") == "results/demo/data/real/train/shard-00000.parquet"
    )
    assert P.data_shard("real") == "results/demo/data/real/{split}/shard-{shard}.parquet"
    assert P.ipc_eval("real", 10, "rgb", "smallcnn", "real") == (
        "results/demo/scaling/eval/real/ipc10/rgb/smallcnn/real.csv"
    )
    wildcards = dict(dataset="real", ipc=10, probe="rgb", arch="smallcnn", test_dataset="real")
    assert P.ipc_eval().format(**wildcards) == P.ipc_eval(**wildcards)
    assert P.figure("spectra", "pdf") == "results/demo/figures/spectra.pdf"
    assert P.samples_prompts("ddpm-cfg3") == "results/demo/figures/samples_prompts/ddpm-cfg3.png"
    assert P.summary() == "results/demo/summary.csv"
    assert P.distribution_table() == "results/demo/distribution.csv"
    assert P.spectra_slopes() == "results/demo/tables/spectra.csv"
