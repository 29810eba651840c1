import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "lib"))
from synth2real.grid import REAL, SPLITS, Grid  # noqa: E402

GRID = Grid(config, root=workflow.basedir)
R = f"results/{config['run']}"
FREQUENCY_PROBES = [
    p for p, s in GRID.probes.items() if s["transform"] in ("lowpass", "highpass")
]
DEPTH_PROBES = [p for p, s in config["probes"].items() if s["transform"] == "depth"]
DIGITS_GENERATORS = [
    g for g in GRID.generators if GRID.registry[g]["pipeline"] == "DigitsDDPM"
]


def alternation(items):
    """Regex matching exactly one of ``items`` (or nothing at all when empty)."""
    return "|".join(re.escape(i) for i in items) if items else "(?!x)x"


wildcard_constraints:
    split="train|val|test",
    shard=r"\d{5}",
    synth=alternation(GRID.synthetic),
    dataset=alternation(GRID.datasets),
    test_dataset=alternation(GRID.datasets),
    generator=alternation(GRID.generators),
    probe=alternation(config["probes"]),
    fprobe=alternation(FREQUENCY_PROBES),
    dprobe=alternation(DEPTH_PROBES),
    arch=alternation(config["architectures"]),


def threads_for(family):
    return config.get("threads", {}).get(
        family, config.get("threads", {}).get("default", 1)
    )


def data_shards(dataset, split):
    return expand(
        f"{R}/data/{dataset}/{split}/shard-{{shard}}.parquet",
        shard=GRID.shard_ids(dataset, split),
    )


def probe_shards(dataset, probe, split):
    """The shards a model on ``probe`` reads: rgb data for identity probes, else probe output."""
    if config["probes"][probe]["transform"] == "identity":
        return data_shards(dataset, split)
    return [f"{R}/probes/{probe}/{dataset}/{split}"]


def get_train_inputs(wildcards):
    return {
        "train": probe_shards(wildcards.dataset, wildcards.probe, "train"),
        "val": probe_shards(wildcards.dataset, wildcards.probe, "val"),
    }


def get_test_shards(wildcards):
    return probe_shards(wildcards.test_dataset, wildcards.probe, "test")


def get_generator_model(wildcards):
    """What a generation job loads: the demo's trained DDPM or downloaded hub weights."""
    gen = GRID.synthetic[wildcards.synth][0]
    if gen in DIGITS_GENERATORS:
        return f"{R}/generators/digits-ddpm/model"
    return f"resources/weights/{gen}/.complete"


def model_path(m):
    return f"{R}/models/{m.dataset}/{m.probe}/{m.arch}/model.pt"


def eval_path(e):
    m = e.model
    return f"{R}/eval/{m.dataset}/{m.probe}/{m.arch}/{e.test_dataset}.csv"


def get_eval_tables(wildcards=None):
    return [eval_path(e) for e in GRID.evaluations()]


def get_feature_model(wildcards=None):
    if config["metrics"]["feature_extractor"] == "classifier":
        return f"{R}/models/{REAL}/rgb/{config['reference_arch']}/model.pt"
    return []


def get_distribution_tables(wildcards=None):
    return [f"{R}/metrics/distribution/{d}.csv" for d in GRID.synthetic]


FIGURES = {
    "accuracy": ("Accuracy", "accuracy.rst"),
    "probes": ("Structure, texture and frequency", "probes.rst"),
    "density_coverage": ("Diversity", "density_coverage.rst"),
    "transfer": ("Transfer asymmetry", "transfer.rst"),
}


def figure_outputs():
    """Named outputs of the figures rule: png (in the report), pdf and csv sidecar per figure."""
    out = {}
    for name, (category, caption) in FIGURES.items():
        out[f"{name}_png"] = report(
            f"{R}/figures/{name}.png", caption=f"../report/{caption}", category=category
        )
        out[f"{name}_pdf"] = f"{R}/figures/{name}.pdf"
        out[f"{name}_csv"] = f"{R}/figures/{name}.csv"
    return out


def intermediate_targets():
    """Every shard, probe view and model. Listing them in ``all`` makes a deleted
    intermediate file count as missing (Snakemake otherwise skips it while its consumers
    are up to date), so it and only what depends on it run again."""
    out = []
    for d in GRID.datasets:
        for split in SPLITS:
            out += data_shards(d, split)
            for probe, spec in GRID.probes.items():
                if spec["transform"] != "identity":
                    out += probe_shards(d, probe, split)
    out += [model_path(m) for m in GRID.models()]
    return out


def all_targets():
    targets = [f"{R}/summary.csv", f"{R}/distribution.csv", *intermediate_targets()]
    targets += [
        f"{R}/figures/{name}.{ext}" for name in FIGURES for ext in ("png", "pdf", "csv")
    ]
    targets += [f"{R}/figures/samples/{d}.png" for d in GRID.synthetic]
    targets += [f"{R}/figures/spectra.png", f"{R}/tables/spectra.csv"]
    targets += [
        f"{R}/metrics/clipscore/{d}.csv"
        for d, (_, p) in GRID.synthetic.items()
        if p == "caption"
    ]
    return targets


def get_real_n_shards(wildcards):
    return GRID.n_shards(REAL, wildcards.split)


def get_real_train_shards(wildcards=None):
    return data_shards(REAL, "train")


def get_prompt_type(wildcards):
    return GRID.synthetic[wildcards.synth][1]


def get_synth_images_per_class(wildcards):
    return config["synthetic"]["splits"][wildcards.split]


def get_registry_spec(wildcards):
    return GRID.registry[wildcards.generator]


def get_split_shards(wildcards):
    return data_shards(wildcards.dataset, wildcards.split)


def get_arch_kwargs(wildcards):
    return config["architectures"][wildcards.arch]


def get_train_seed(wildcards):
    """One seed per model: same config, same weights; different models, independent draws."""
    from synth2real.seeding import derive_seed

    return derive_seed(
        config["seed"], "train", wildcards.dataset, wildcards.probe, wildcards.arch
    ) % (2**31)


def get_train_shards_of_dataset(wildcards):
    return data_shards(wildcards.dataset, "train")


def get_train_shards_of_synth(wildcards):
    return data_shards(wildcards.synth, "train")


def get_generator_names(wildcards=None):
    return {g: GRID.registry[g].get("display_name", g) for g in GRID.generators}


def get_prompt_inputs(wildcards):
    """Caption prompts read the captions table; class-name prompts need nothing."""
    if GRID.synthetic[wildcards.synth][1] == "caption":
        return {"captions": f"{R}/captions/captions.parquet"}
    return {}


def get_classes_file(wildcards=None):
    return config["data"]["classes"] or []


def get_weight_flags(wildcards=None):
    return [
        f"resources/weights/{g}/.complete"
        for g in GRID.generators
        if g not in DIGITS_GENERATORS
    ]
