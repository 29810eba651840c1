import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "lib"))
from synth2real import catalog  # noqa: E402
from synth2real.grid import REAL, SPLITS, Grid  # noqa: E402
from synth2real.paths import RunPaths, weights_flag  # noqa: E402
from synth2real.settings import (  # noqa: E402
    ResultSettings,
    generator_settings,
    load_schema,
)

GRID = Grid(config, root=workflow.basedir)
# Every output path comes from P (synth2real.paths).
P = RunPaths.of_run(config["run"])
FREQUENCY_PROBES = catalog.frequency_probes(GRID)
DEPTH_PROBES = [p for p, s in config["probes"].items() if s["transform"] == "depth"]
ENV_FILES = sorted(str(p) for p in (Path(workflow.basedir) / "envs").glob("*.yaml"))
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
    return expand(P.data_shard(dataset, split), shard=GRID.shard_ids(dataset, split))


def probe_shards(dataset, probe, split):
    """The shards a model on ``probe`` reads: rgb data for identity probes, else probe output."""
    if config["probes"][probe]["transform"] == "identity":
        return data_shards(dataset, split)
    return [P.probe_view(probe, dataset, split)]


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
        return P.digits_ddpm()
    return weights_flag(gen)


def model_path(m):
    return P.model(m.dataset, m.probe, m.arch)


def eval_path(e):
    m = e.model
    return P.eval_csv(m.dataset, m.probe, m.arch, e.test_dataset)


def get_eval_tables(wildcards=None):
    return [eval_path(e) for e in GRID.evaluations()]


def eval_test_sets(wildcards):
    """The test sets one evaluation job scores its model on. A model is scored on real by
    rule evaluate; a real-trained one also on each generator's synthetic test sets, by rule
    evaluate_real_model, one job per (model, generator): one job per model over all 28
    would make one generator's page need every generator's test split."""
    if "generator" in wildcards.keys():
        return synth_of(wildcards.generator)
    return [REAL]


def real_model_eval_outputs():
    """evaluate_real_model's outputs: the real model's CSV on each of one generator's
    synthetic test sets (wildcards dataset=real, probe, arch, generator)."""
    return [P.eval_csv(test_dataset=f"{{generator}}-{p}") for p in GRID.prompt_types]


def get_eval_inputs(wildcards):
    """The model and, named by test set, each test split it is scored on."""
    return {
        "model": model_path(wildcards),
        **{
            t: probe_shards(t, wildcards.probe, "test")
            for t in eval_test_sets(wildcards)
        },
    }


def get_feature_model(wildcards=None):
    if config["metrics"]["feature_extractor"] == "classifier":
        return P.model(REAL, "rgb", config["reference_arch"])
    return []


def get_distribution_tables(wildcards=None):
    return [P.distribution(d) for d in GRID.synthetic]


# ---------------------------------------------------------------- the figure catalog
# Figure names, report categories, captions and fillability: synth2real.catalog.
# The run's figures (the figures job draws them) and each generator's page's figures.
FIGURES = [f.name for f in catalog.run_figures()]
PAGE_FIGURES = [f.name for f in catalog.page_figures()]


def fillable(name):
    """Whether this run's grid can put a point on figure ``name``. Every figure is drawn
    (empty ones say why), but only fillable ones go into the report."""
    return catalog.BY_NAME[name].fillable(GRID)


def figure_report(path, name, **kwargs):
    """``path`` as a report item with figure ``name``'s caption, if the grid can fill it."""
    if not fillable(name):
        return path
    fig = catalog.BY_NAME[name]
    kwargs.setdefault("category", fig.category)
    return report(path, caption=f"../report/{fig.caption}", **kwargs)


def figure_outputs():
    """Named outputs of the figures rule: png (in the report), pdf and csv sidecar per figure."""
    out = {}
    for fig in catalog.run_figures():
        out[f"{fig.name}_png"] = figure_report(P.figure(fig.name, "png"), fig.name)
        out[f"{fig.name}_pdf"] = P.figure(fig.name, "pdf")
        out[f"{fig.name}_csv"] = P.figure(fig.name, "csv")
    return out


def page_outputs():
    """Named outputs of one generator's page (wildcard ``generator``): every figure with its
    point highlighted, its rows, and the page itself. Report category: the generator."""
    out = {}
    category = "Generator {generator}"
    for fig in catalog.page_figures():
        out[f"{fig.name}_png"] = figure_report(
            P.page_figure(fig.name, "png"),
            fig.name,
            category=category,
            subcategory="Figures",
        )
        out[f"{fig.name}_pdf"] = P.page_figure(fig.name, "pdf")
        out[f"{fig.name}_csv"] = P.page_figure(fig.name, "csv")
    out["results"] = report(
        P.page_results(),
        caption="../report/page_results.rst",
        category=category,
        subcategory="Tables",
    )
    out["page"] = P.page()
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
    targets = [P.summary(), P.distribution_table(), *intermediate_targets()]
    targets += [
        P.figure(f.name, ext)
        for f in catalog.run_figures()
        for ext in ("png", "pdf", "csv")
    ]
    targets += [P.samples(d) for d in GRID.synthetic]
    targets += [P.samples_table(p) for p in GRID.prompt_types]
    targets += [P.page(g) for g in GRID.generators]
    targets += [P.results_markdown(), P.run_versions()]
    targets += get_ipc_table()
    targets += [P.figure("spectra"), P.spectra_slopes()]
    targets += get_clipscore_tables()
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
    return generator_settings(GRID.registry[wildcards.generator], REGISTRY_SCHEMA)


# Params are a rerun trigger: Snakemake reruns a job whose params changed since it ran. So a
# job's params are exactly the settings it reads that can change its output, never the whole
# config (with ``config=config`` a new figure option retrained every model and regenerated
# every shard) and never a runtime knob: the schema marks those ``x-runtime`` (workers,
# threads, device, caches, batch-invariant batch sizes, the captioner's concurrency and
# retries, where ImageNet lives), ``result_settings`` drops them, and scripts read them from
# ``snakemake.config``. See docs/rerun_contract_section.md.
result_settings = ResultSettings(
    config, load_schema(Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
)
REGISTRY_SCHEMA = load_schema(
    Path(workflow.basedir) / "workflow/schemas/generators.schema.yaml"
)


def settings_subset(section, *keys):
    """The named settings of a config section (those present), without runtime keys."""
    values = result_settings(section, default={})
    return {k: v for k, v in values.items() if k in keys}


def class_settings():
    """What picks the class list (synth2real.prompts.plan.class_table): the source, and the
    class table only where it is read (ImageNet; the digits have their own ten)."""
    keys = ["source"] + (["classes"] if config["data"]["source"] == "imagenet" else [])
    return settings_subset("data", *keys)


def real_data_settings():
    """Everything the real shards depend on: the data section without its runtime keys
    (imagenet_root: where the images live), and without the class table for the digits.
    """
    data = result_settings("data")
    if data["source"] != "imagenet":
        data.pop("classes", None)
    return data


def feature_settings():
    """The feature extractor, and the CLIP model only where it is the extractor."""
    keys = ["feature_extractor"]
    keys += ["clip_model"] if config["metrics"]["feature_extractor"] == "clip" else []
    return settings_subset("metrics", *keys)


def spectra_settings(*keys):
    """The named ``metrics.spectra`` settings (schema defaults filled)."""
    values = result_settings("metrics", "spectra", default={})
    return {k: v for k, v in values.items() if k in keys}


def figure_settings(*keys):
    """A sample figure's settings: the class list and the named ``figures`` options."""
    return {"data": class_settings(), "figures": settings_subset("figures", *keys)}


def probe_settings(name):
    """A probe's transform settings, without which architectures read it, whether it is on,
    or its runtime keys (the depth model's batch size)."""
    spec = result_settings("probes", name)
    return {k: v for k, v in spec.items() if k not in ("archs", "enabled")}


def get_probe_transform(wildcards):
    return config["probes"][wildcards.probe]["transform"]


def get_frequency_probe_settings(wildcards):
    return probe_settings(wildcards.fprobe)


def get_depth_probe_settings(wildcards):
    return probe_settings(wildcards.dprobe)


def get_generator_spec_of_synth(wildcards):
    """What generation reads of the registry entry: not its figure metadata."""
    spec = GRID.registry[GRID.synthetic[wildcards.synth][0]]
    return generator_settings(spec, REGISTRY_SCHEMA)


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
        return {"captions": P.captions()}
    return {}


def get_classes_file(wildcards=None):
    return config["data"]["classes"] or []


def get_weight_flags(wildcards=None):
    return [weights_flag(g) for g in GRID.generators if g not in DIGITS_GENERATORS]


# ---------------------------------------------------------------- figures, pages, scaling
def synth_of(generator):
    """A generator's synthetic datasets of the main grid (one per prompt type)."""
    return [d for d, (g, _) in GRID.synthetic.items() if g == generator]


def get_clipscore_tables(wildcards=None):
    return [P.clipscore(d) for d, (_, p) in GRID.synthetic.items() if p == "caption"]


def get_ipc_table(wildcards=None):
    return [P.ipc_table()] if GRID.ipc_grid() else []


def get_spectra_tables(wildcards=None):
    return [P.spectrum(d) for d in GRID.datasets]


def get_figure_inputs(wildcards=None):
    return {
        "results": P.results_table(),
        "distribution": P.distribution_table(),
        "clipscore": get_clipscore_tables(),
        "ipc": get_ipc_table(),
    }


def get_markdown_inputs(wildcards=None):
    return {**get_figure_inputs(), "slopes": P.spectra_slopes()}


def figure_params():
    """What every figure job needs besides tables: the registry and the grid's shape."""
    return {
        "registry": {g: GRID.registry[g] for g in GRID.generators},
        "synthetic": GRID.synthetic,
        "probes": {p: result_settings("probes", p) for p in GRID.probes},
        "rgb_archs": config["probes"]["rgb"]["archs"],
        "reference_arch": config["reference_arch"],
        "run": config["run"],
    }


def sample_table_shards(datasets):
    return {d: data_shards(d, "train") for d in datasets}


def get_samples_table_inputs(wildcards):
    """Table 1: the train shards of every generator's dataset of one prompt type, and real."""
    ds = [d for d, (_, p) in GRID.synthetic.items() if p == wildcards.prompt_type]
    return [s for shards in sample_table_shards([REAL, *ds]).values() for s in shards]


def get_samples_table_sources(wildcards):
    ds = [d for d, (_, p) in GRID.synthetic.items() if p == wildcards.prompt_type]
    return sample_table_shards([REAL, *ds])


def get_samples_prompts_inputs(wildcards):
    """Table 2: one generator's datasets of every prompt type, and real."""
    return [
        s
        for shards in sample_table_shards(
            [REAL, *synth_of(wildcards.generator)]
        ).values()
        for s in shards
    ]


def get_samples_prompts_sources(wildcards):
    return sample_table_shards([REAL, *synth_of(wildcards.generator)])


# --- Fig. 7: images per class. IPC models live under scaling/, apart from the main grid.
CPC = GRID.cpc_datasets()
SCALING = GRID.scaling_datasets()
IPC_PROBE = "rgb"


def ipc_eval_path(dataset, ipc):
    """The evaluation behind one Fig. 7 point. At the full train size of a main-grid dataset
    it is the main model's own (no extra training); otherwise an IPC model's."""
    arch = config["reference_arch"]
    if dataset in GRID.datasets and ipc == GRID.full_train_ipc(dataset):
        return P.eval_csv(dataset, IPC_PROBE, arch, REAL)
    return P.ipc_eval(dataset, ipc, IPC_PROBE, arch, REAL)


def ipc_entries(generators=None):
    """Every Fig. 7 point as {path, dataset, generator, variant, ipc, arch}."""
    out = []
    for d, (g, variant) in SCALING.items():
        if generators is not None and g not in generators:
            continue
        full = GRID.full_train_ipc(d)
        for n in GRID.ipc_grid():
            if n <= full:
                out.append(
                    {
                        "path": ipc_eval_path(d, n),
                        "dataset": d,
                        "generator": g,
                        "variant": variant,
                        "ipc": n,
                        "arch": config["reference_arch"],
                    }
                )
    return out


def get_ipc_eval_tables(wildcards=None):
    return [e["path"] for e in ipc_entries()]


def get_ipc_subset_input(wildcards):
    if wildcards.dataset in CPC:
        return cpc_shards(wildcards.dataset)
    return data_shards(wildcards.dataset, "train")


def get_ipc_train_inputs(wildcards):
    """An IPC model trains on its subset and selects on its dataset's val split (a CPC
    dataset, which has only a train split, on its caption dataset's)."""
    val_of = wildcards.dataset
    if wildcards.dataset in CPC:
        val_of = f"{CPC[wildcards.dataset][0]}-caption"
    return {
        "train": [P.ipc_subset(wildcards.dataset, wildcards.ipc)],
        "val": data_shards(val_of, "val"),
    }


def get_ipc_train_seed(wildcards):
    from synth2real.seeding import derive_seed

    return derive_seed(
        config["seed"], "train-ipc", wildcards.dataset, wildcards.ipc, wildcards.arch
    ) % (2**31)


def cpc_shards(dataset):
    return expand(P.cpc_shard(dataset, "train"), shard=GRID.shard_ids(dataset, "train"))


def get_cpc_generator_spec(wildcards):
    return generator_settings(GRID.registry[CPC[wildcards.synth][0]], REGISTRY_SCHEMA)


def get_cpc_generator_model(wildcards):
    gen = CPC[wildcards.synth][0]
    if gen in DIGITS_GENERATORS:
        return P.digits_ddpm()
    return weights_flag(gen)


def get_cpc_spec(wildcards):
    _, _, cpc, k = CPC[wildcards.synth]
    return {"captions_per_class": cpc, "images_per_caption": k}


# --- one generator's page: declared inputs are its own files and the real baseline only.
def page_datasets(generator):
    return [REAL, *synth_of(generator)]


def get_page_inputs(wildcards):
    g = wildcards.generator
    mine = set(synth_of(g))
    evals = [
        eval_path(e)
        for e in GRID.evaluations()
        if e.model.dataset in mine
        or (e.model.dataset == REAL and e.test_dataset in mine | {REAL})
    ]
    return {
        "evals": evals,
        "distribution": [P.distribution(d) for d in synth_of(g)],
        "clipscore": [
            P.clipscore(d) for d in synth_of(g) if GRID.synthetic[d][1] == "caption"
        ],
        "spectra": [P.spectrum(d) for d in page_datasets(g)],
        "ipc": [e["path"] for e in ipc_entries({g, REAL})],
        "samples": [P.samples(d) for d in synth_of(g)],
        "samples_prompts": P.samples_prompts(g),
    }


def get_page_context(wildcards):
    """Every generator's result files: the page reads those that exist as grey context."""
    return {
        "evals": get_eval_tables(),
        "distribution": get_distribution_tables(),
        "clipscore": get_clipscore_tables(),
        "spectra": get_spectra_tables(),
        "ipc": ipc_entries(),
        "own_ipc": ipc_entries({wildcards.generator, REAL}),
    }


# --- node-local disk of a training job (SLURM: --tmp)
def decoded_cache_mb(wildcards):
    """Node-local disk (MiB) a training job's decoded cache takes: every split it streams
    (train.loader stream, or auto and over memory_limit_mb decoded) is decoded once to
    rows x side x side x 3 pixels (uint8; uint16 for a 16-bit probe view) under
    train.decoded_cache; 0 without a cache. Mirrors synth2real.train.recipe.Runtime.mode,
    from the split sizes the config fixes."""
    train = config["train"]
    if not train["decoded_cache"]:
        return 0
    classes = GRID.num_classes
    dataset = wildcards.dataset
    if hasattr(
        wildcards, "ipc"
    ):  # an IPC model: n per class, validated on its val split
        rows = {"train": int(wildcards.ipc) * classes}
        dataset = f"{CPC[dataset][0]}-caption" if dataset in CPC else dataset
    else:
        rows = {"train": GRID.split_sizes(dataset)["train"]}
    rows["val"] = GRID.split_sizes(dataset)["val"]
    side = config["data"]["image_size"]
    probe = config["probes"].get(getattr(wildcards, "probe", "rgb"), {})
    # Bytes a channel: 2 for 16-bit views (only frequency probes have bits).
    depth = 2 if probe.get("bits") == 16 else 1
    total = 0
    for n in rows.values():
        size = n * side * side * 3 * depth
        if train["loader"] == "stream" or (
            train["loader"] == "auto" and size / 1e6 > train["memory_limit_mb"]
        ):
            total += size
    return (
        -(-total * 102 // (100 * 2**20)) if total else 0
    )  # MiB, 2% for the file system


def get_train_slurm_extra(wildcards):
    """sbatch's --tmp for the decoded cache (the SLURM plugin has no disk resource)."""
    mb = decoded_cache_mb(wildcards)
    return f"--tmp={mb}M" if mb else ""
