import functools
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "lib"))
from synth2real import catalog, input_checks  # noqa: E402
from synth2real import weights as hub  # noqa: E402
from synth2real.caption_cost import dry_run_note  # noqa: E402
from synth2real.caption_settings import WORKFLOW_KEYS  # noqa: E402
from synth2real.grid import REAL, SPLITS, Grid, read_classes  # noqa: E402
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
# Every hub model the grid loads (generators, CLIP, depth), by weights id: `snakemake weights`
# fetches them into resources/weights/<id>, the only place compute jobs load them from.
HUB_WEIGHTS = hub.grid_weights(GRID)


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
    weights=alternation(HUB_WEIGHTS),
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


def get_generator_train_inputs(wildcards=None):
    """The demo generator's training data: the real train shards, and the train captions
    where the grid has caption prompts (the generator then learns them too)."""
    inputs = {"shards": get_real_train_shards(wildcards)}
    if "caption" in GRID.prompt_types:
        inputs["captions"] = P.captions()
    return inputs


def get_generator_model(wildcards):
    """What a generation job loads: the demo's trained DDPM or downloaded hub weights."""
    gen = GRID.synthetic[wildcards.synth][0]
    if gen in DIGITS_GENERATORS:
        return P.digits_ddpm()
    return weights_input(gen)


def model_path(m):
    return P.model(m.dataset, m.probe, m.arch)


def eval_path(e):
    m = e.model
    return P.eval_csv(m.dataset, m.probe, m.arch, e.test_dataset)


def get_eval_tables(wildcards=None):
    return [eval_path(e) for e in GRID.evaluations()]


# --- evaluation: one job scores many models, each on its own test sets. A job's start-up
# (Python, torch, the Snakemake object) outweighs scoring a model on a test split, so rule
# evaluate is one job per training dataset (its every model on the real test split: the real
# baseline, Synth->Real) and rule evaluate_real_model one job per generator (every real model
# on that generator's synthetic test splits, Real->Synth). Not one job per real model over all
# generators: that would make one generator's page need every generator's test split.
# Outputs are named <probe>/<arch>/<tag>, inputs model:<probe>/<arch> and test:<probe>/<tag>
# (tag: the test dataset, or the prompt type for a generator's datasets); scripts/evaluate.py.
def eval_slots(tags):
    """(output key, probe, arch, tag) of every model of one training set on each tag."""
    return [
        (f"{probe}/{arch}/{tag}", probe, arch, tag)
        for probe, spec in GRID.probes.items()
        for arch in spec["archs"]
        for tag in tags
    ]


def eval_outputs(per_generator=False):
    """Named outputs of an evaluation job (wildcard ``dataset``): on the real test split,
    or (``per_generator``, wildcard ``generator``) on each of a generator's test splits.
    """
    if not per_generator:
        return {
            k: P.eval_csv(probe=p, arch=a, test_dataset=REAL)
            for k, p, a, _ in eval_slots([REAL])
        }
    return {
        key: P.eval_csv(probe=probe, arch=arch, test_dataset=f"{{generator}}-{tag}")
        for key, probe, arch, tag in eval_slots(GRID.prompt_types)
    }


def get_eval_inputs(wildcards):
    """Each model of the job by ``model:<probe>/<arch>``, each test split it is scored on by
    ``test:<probe>/<tag>``."""
    if "generator" in wildcards.keys():
        tests = {p: f"{wildcards.generator}-{p}" for p in GRID.prompt_types}
    else:
        tests = {REAL: REAL}
    inputs = {}
    for _, probe, arch, tag in eval_slots(tests):
        inputs[f"model:{probe}/{arch}"] = P.model(wildcards.dataset, probe, arch)
        inputs[f"test:{probe}/{tag}"] = probe_shards(tests[tag], probe, "test")
    return inputs


def get_feature_model(wildcards=None):
    """The feature extractor: the real-trained classifier, or CLIP's downloaded weights."""
    if config["metrics"]["feature_extractor"] == "classifier":
        return P.model(REAL, "rgb", config["reference_arch"])
    return get_clip_weights()


def get_clipscore_inputs(wildcards=None):
    """CLIP's weights, or for the attribute stand-in the train captions (their bin edges)."""
    shards = {"shards": get_train_shards_of_synth(wildcards)}
    if config["metrics"]["caption_score"] == "attributes":
        return {**shards, "captions": P.captions()}
    return {**shards, "clip": get_clip_weights()}


def clipscore_settings():
    """What the caption score depends on: the CLIP model, or only which score it is."""
    if config["metrics"]["caption_score"] == "attributes":
        return settings_subset("metrics", "caption_score")
    return settings_subset("metrics", "clip_model", "clip_revision")


def get_adherence_tables(wildcards=None, datasets=None):
    """The measured prompt-following tables (metrics.adherence: judge), one per synthetic
    dataset (of ``datasets``, default all)."""
    if config["metrics"]["adherence"] != "judge":
        return []
    return [P.adherence(d) for d in (GRID.synthetic if datasets is None else datasets)]


def get_reference_features(wildcards=None):
    """Density/coverage's real reference: real train's features (the paper), or those of the
    split metrics.reference names."""
    split = config["metrics"]["reference"]
    return P.features(REAL) if split == "train" else P.reference_features(split)


def get_clip_weights(wildcards=None):
    return weights_input(hub.clip_weights(config).id)


def get_depth_weights(wildcards):
    return weights_input(hub.depth_weights(config["probes"][wildcards.dprobe]).id)


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
    targets += [P.figure("probe_views", ext) for ext in ("png", "pdf", "csv")]
    targets += [P.caption_samples()] if fillable("caption_samples") else []
    targets += get_clipscore_tables()
    return targets


# ---------------------------------------------------------------- outside inputs
# A bad outside input (ImageNet folder, OpenAI key) is found while the DAG is built, through
# an input function (naming no file) of the rule reading it. Only rules in the DAG with
# an output still to make are checked, so `snakemake weights` needs no ImageNet and finished
# results need neither. A run that executes jobs stops there, before any job starts, with
# the message the job itself would print; a dry run, --touch or a DAG listing only warns, so
# the paper grid can be planned before its inputs exist.
def stop_or_warn(problem):
    """Raise ``problem`` (a message, or None) in a run that executes jobs, else warn once."""
    if problem is None:
        return
    executes = workflow.executor_plugin is not None
    if executes and not (workflow.dryrun or workflow.touch):
        raise WorkflowError(problem)
    warn_once(problem)


@functools.cache
def warn_once(problem):
    logger.warning(f"{problem}\n(a run that executes jobs stops here, before any job)")


def problem_of(check, *args):
    try:
        check(*args)
    except ValueError as exc:
        return str(exc)
    return None


@functools.cache
def imagenet_problem():
    """The ImageNet layout, once per DAG build (about 400 directory tests at paper scale)."""
    classes = Path(workflow.basedir) / config["data"]["classes"]
    wnids = [row["wnid"] for row in read_classes(classes)]
    return problem_of(
        input_checks.check_imagenet, config["data"].get("imagenet_root"), wnids
    )


def imagenet_checked(wildcards):
    """real_data's outside input: the ImageNet layout, for a shard still to make (finished
    shards need no ImageNet: moving it reruns nothing)."""
    shard = P.data_shard(REAL, wildcards.split, wildcards.shard)
    if config["data"]["source"] == "imagenet" and not os.path.exists(shard):
        stop_or_warn(imagenet_problem())
    return []


def openai_key_checked(wildcards=None):
    """The captions rule's outside input: OPENAI_API_KEY where the server needs one, while
    the captions table is still to make (with it made or copied in, no run needs the key).
    """
    if not os.path.exists(P.captions()):
        base_url = config.get("captions", {}).get("base_url")
        stop_or_warn(problem_of(input_checks.check_openai_key, base_url))
    return []


def get_real_n_shards(wildcards):
    return GRID.n_shards(REAL, wildcards.split)


def get_real_train_shards(wildcards=None):
    return data_shards(REAL, "train")


def get_prompt_type(wildcards):
    return GRID.synthetic[wildcards.synth][1]


def get_synth_images_per_class(wildcards):
    return config["synthetic"]["splits"][wildcards.split]


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
    if config["metrics"]["feature_extractor"] == "clip":
        keys += ["clip_model", "clip_revision"]
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
    """Caption prompts read the captions of their split's source (synth2real.grid
    Grid.caption_source: the split itself with captions.held_out, else train); class-name
    prompts need nothing."""
    if GRID.synthetic[wildcards.synth][1] == "caption":
        return {"captions": P.captions(GRID.caption_source(wildcards.split))}
    return {}


def captioned_splits():
    """The real splits the captions job reads (train alone when the grid has no caption
    prompts: the job then runs only when its output is asked for by name)."""
    return GRID.captioned_splits() or ("train",)


def get_caption_inputs(wildcards=None):
    """The real shards of every captioned split (``shards`` = train's) and the class table."""
    inputs = {"classes": get_classes_file()}
    for split in captioned_splits():
        name = "shards" if split == "train" else f"{split}_shards"
        inputs[name] = data_shards(REAL, split)
    return inputs


def held_out_caption_outputs():
    """The val and test caption tables the captions job also writes (captions.held_out)."""
    return {f"{s}_captions": P.captions(s) for s in captioned_splits() if s != "train"}


def caption_request_settings():
    """What the captioner asks and how it sends the image: the captions section's result
    settings without held_out, which picks the images (the job's inputs), not the request.
    """
    settings = result_settings("captions", default={})
    return {k: v for k, v in settings.items() if k not in WORKFLOW_KEYS}


def openai_captioner():
    """Whether the caption tables come from the OpenAI(-compatible) captioner (rule captions),
    the one step that costs money per image. Digits are captioned locally, at no cost
    (synth2real.captions.digits, rule digits_captions)."""
    return config["data"]["source"] != "digits"


def caption_cost_note():
    """What the captions job will cost, for the dry run: None unless it is in the plan (the
    grid has caption prompts, the OpenAI captioner writes them and a caption table is
    missing). Parse-time work: arithmetic on the config (synth2real.caption_cost) and
    whether the tables exist."""
    if not openai_captioner():
        return None
    missing = [s for s in GRID.captioned_splits() if not Path(P.captions(s)).exists()]
    if not missing:
        return None
    images = {s: GRID.split_sizes(REAL)[s] for s in missing}
    return dry_run_note(config["captions"], images, config["data"]["image_size"])


def get_classes_file(wildcards=None):
    return config["data"].get("classes") or []


def get_weight_flags(wildcards=None):
    """Every hub model's flag (the run page lists the commits they record)."""
    check_weights_present()
    return [w.flag for w in HUB_WEIGHTS.values()]


def get_weights_source(wildcards):
    """What one download reads (its params): repo, revision, variant and file patterns; never
    where the files go."""
    return HUB_WEIGHTS[wildcards.weights].download_spec()


# ---------------------------------------------------------------- bad input: weights
# Checked while the DAG is built, so a bad input stops the run before any job (in a dry run
# it is a warning: the plan then shows the download jobs; see stop_or_warn). Each check stats a
# few files.
def weights_input(weights_id):
    """The flag of downloaded weights that a compute job loads (the files are beside it)."""
    check_weights_present()
    return weights_flag(weights_id)


@functools.cache
def check_weights_present():
    """Compute jobs never download (they run offline): every hub model must be local first."""
    missing = hub.missing(HUB_WEIGHTS.values())
    if missing:
        stop_or_warn(
            hub.missing_weights_message(
                missing, [str(c) for c in workflow.overwrite_configfiles or ()]
            )
        )


def get_weights_to_fetch(wildcards=None):
    """Rule weights' inputs: every hub model's flag. A gated repo still to fetch without
    HF_TOKEN stops the run before the first download."""
    gated = hub.gated_without_token(hub.missing(HUB_WEIGHTS.values()))
    if gated:
        stop_or_warn(hub.gated_message(gated))
    return [w.flag for w in HUB_WEIGHTS.values()]


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
        "adherence": get_adherence_tables(),
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


# --- Fig. 2: one real and one synthetic train image under every probe.
def probe_views_datasets():
    """Fig. 2's rows: real, then the grid's first caption dataset, else its first dataset.

    A caption dataset's first rows regenerate real train images from their captions, so
    both rows can show one scene.
    """
    caption = [d for d, (_, p) in GRID.synthetic.items() if p == "caption"]
    return [REAL, *(caption or list(GRID.synthetic))[:1]]


def probe_view_sources():
    """Per Fig. 2 row: the first train shard and the probe views of the train split (the
    figure reads one row of each, not the splits)."""
    views = [p for p, s in GRID.probes.items() if s["transform"] != "identity"]
    return {
        d: {
            "data": P.data_shard(d, "train", GRID.shard_ids(d, "train")[0]),
            "views": {p: P.probe_view(p, d, "train") for p in views},
        }
        for d in probe_views_datasets()
    }


def get_probe_views_inputs(wildcards=None):
    return [
        path
        for src in probe_view_sources().values()
        for path in (src["data"], *src["views"].values())
    ]


def probe_view_settings():
    """What Fig. 2 reads of each enabled probe: its transform, and for identity probes the
    architectures (a BagNet's patch size is what its view shows)."""
    return {
        p: {"transform": s["transform"]}
        | ({"archs": s["archs"]} if s["transform"] == "identity" else {})
        for p, s in GRID.probes.items()
    }


def probe_view_labels():
    """Fig. 2's row labels: real, and the generator's display name with the prompt type."""
    labels = {REAL: REAL}
    for d in probe_views_datasets()[1:]:
        gen, prompt_type = GRID.synthetic[d]
        labels[d] = f"{GRID.registry[gen].get('display_name', gen)} ({prompt_type})"
    return labels


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
    return weights_input(gen)


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
        "adherence": get_adherence_tables(datasets=synth_of(g)),
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
        "adherence": get_adherence_tables(),
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
