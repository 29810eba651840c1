"""The benchmark grid: every dataset, shard, model and evaluation the config asks for.

Snakemake reads this at parse time (in ``common.smk``) to enumerate targets, so it must stay
cheap: no torch, no data access beyond the small config and registry files. Checks here give
messages that name the config key, because a wrong id otherwise surfaces as an obscure
"missing input" error far from its cause.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth2real.registry import load_registry

SPLITS: tuple[str, ...] = ("train", "val", "test")
REAL = "real"
DIGITS_CLASSES = 10


class ConfigError(ValueError):
    """The config is valid JSON-schema-wise but inconsistent (e.g. an unknown generator id)."""


@dataclass(frozen=True)
class Model:
    """One classifier to train: on ``dataset``'s ``probe`` view, with architecture ``arch``."""

    dataset: str
    probe: str
    arch: str


@dataclass(frozen=True)
class Evaluation:
    """One (trained model, test dataset) pair: a row of the summary table."""

    model: Model
    test_dataset: str


def n_shards(n_rows: int, shard_size: int) -> int:
    """Shards of a split: fixed by config, so the whole DAG is known before any job runs."""
    return max(1, math.ceil(n_rows / shard_size))


def read_classes(
    path: str | Path, id_column: str = "wnid", name_column: str = "name"
) -> list[dict[str, str]]:
    """The rows of a class table, in label order: the one reader of class files.

    ``data.classes`` is a TSV with columns ``wnid`` and ``name``; a ``.csv`` suffix reads
    comma-separated values, and other column names can be asked for (the captioning CLI's
    ``--classes`` accepts any class table).
    """
    delimiter = "," if str(path).endswith(".csv") else "\t"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=delimiter))
    if not rows or not {id_column, name_column} <= set(rows[0]):
        raise ConfigError(
            f"data.classes: {path} must be a table with columns {id_column} and {name_column}"
        )
    return rows


class Grid:
    """Everything the DAG enumerates, derived once from a validated config."""

    def __init__(self, config: Mapping[str, Any], root: str | Path = ".") -> None:
        self.config = config
        self.root = Path(root)
        self.run = config["run"]
        self.registry = load_registry(self.root / config["generators_file"])
        unknown = [g for g in config["generators"] if g not in self.registry]
        if unknown:
            raise ConfigError(
                f"generators: unknown id(s) {', '.join(unknown)}; "
                f"{config['generators_file']} defines {', '.join(self.registry)}"
            )
        self.generators: list[str] = list(config["generators"])
        self._check_stored_size()
        self.prompt_types: list[str] = list(config["prompt_types"])
        self.synthetic: dict[str, tuple[str, str]] = {
            f"{g}-{p}": (g, p) for g in self.generators for p in self.prompt_types
        }
        self.datasets: list[str] = [REAL, *self.synthetic]
        self.num_classes = self._num_classes()
        self.probes: dict[str, dict[str, Any]] = {
            name: spec for name, spec in config["probes"].items() if spec.get("enabled", True)
        }
        for name, spec in config["probes"].items():
            for arch in spec["archs"]:
                if arch not in config["architectures"]:
                    raise ConfigError(
                        f"probes.{name}.archs: unknown architecture {arch!r}; "
                        f"architectures defines {', '.join(config['architectures'])}"
                    )
            if spec["transform"] in ("lowpass", "highpass") and "cutoff" not in spec:
                raise ConfigError(f"probes.{name}: a {spec['transform']} probe needs a cutoff")
        if config["reference_arch"] not in config["probes"]["rgb"]["archs"]:
            raise ConfigError("reference_arch must be one of probes.rgb.archs")

    def _check_stored_size(self) -> None:
        """Real and synthetic images are stored at one side: ``data.image_size`` for real, each
        generator's ``output_size`` for synthetic (synth2real.preprocess makes them alike in
        every other way). A mismatch would train on one size and test on another."""
        side = self.config["data"]["image_size"]
        off = {g: self.registry[g]["output_size"] for g in self.generators}
        off = {g: s for g, s in off.items() if s != side}
        if off:
            raise ConfigError(
                f"data.image_size is {side} but {self.config['generators_file']} stores "
                + ", ".join(f"{g} at {s}" for g, s in off.items())
                + " (output_size); real and synthetic images must share one stored size"
            )

    # ----------------------------------------------------------------- data
    def _num_classes(self) -> int:
        data = self.config["data"]
        if data["source"] == "digits":
            return DIGITS_CLASSES
        if not data.get("classes"):
            raise ConfigError("data.classes: a class TSV is required when data.source is imagenet")
        return len(read_classes(self.root / data["classes"]))

    def split_sizes(self, dataset: str) -> dict[str, int]:
        section = self.config["data"] if dataset == REAL else self.config["synthetic"]
        return {s: section["splits"][s] * self.num_classes for s in SPLITS}

    def n_shards(self, dataset: str, split: str) -> int:
        section = self.config["data"] if dataset == REAL else self.config["synthetic"]
        return n_shards(self.split_sizes(dataset)[split], section["shard_size"])

    def shard_ids(self, dataset: str, split: str) -> list[str]:
        return [f"{i:05d}" for i in range(self.n_shards(dataset, split))]

    def generator_spec(self, dataset: str) -> dict[str, Any]:
        return self.registry[self.synthetic[dataset][0]]

    # ----------------------------------------------------------------- captions
    def caption_source(self, split: str) -> str:
        """The real split whose captions prompt a caption dataset's ``split``.

        With ``captions.held_out`` each split has its own (val from real val, test from real
        test), so Real->Synth is measured on images the real model never trained on and the
        synthetic val and test splits share no prompt. Without it every split draws on the
        train captions, as the official code, which captions the train images only.
        """
        captions = self.config.get("captions")
        if captions is None:
            raise ConfigError("caption prompts need a captions section (captions: {} = defaults)")
        return split if captions["held_out"] else "train"

    def captioned_splits(self) -> tuple[str, ...]:
        """The real splits the captions job captions, in split order (none without caption
        prompts); each synthetic split must fit in its source (one caption per image)."""
        if "caption" not in self.prompt_types:
            return ()
        data, synth = self.config["data"]["splits"], self.config["synthetic"]["splits"]
        for split in SPLITS:
            source = self.caption_source(split)
            if synth[split] > data[source]:
                raise ConfigError(
                    f"synthetic.splits.{split}: {synth[split]} caption prompts per class, but "
                    f"its captions come from data.splits.{source} ({data[source]} per class)"
                )
        return tuple(dict.fromkeys(self.caption_source(s) for s in SPLITS))

    # ----------------------------------------------------------------- models
    def models(self) -> list[Model]:
        return [
            Model(d, probe, arch)
            for d in self.datasets
            for probe, spec in self.probes.items()
            for arch in spec["archs"]
        ]

    def evaluations(self) -> list[Evaluation]:
        """Real baseline, Synth->Real for every synthetic model, Real->Synth for every real one."""
        out = []
        for m in self.models():
            out.append(Evaluation(m, REAL))
            if m.dataset == REAL:
                out.extend(Evaluation(m, d) for d in self.synthetic)
        return out

    # ----------------------------------------------------------------- scaling (Fig. 7)
    @property
    def scaling(self) -> Mapping[str, Any]:
        """The ``scaling`` config section (empty grids when absent: no Fig. 7 jobs)."""
        return self.config.get("scaling") or {}

    def ipc_grid(self) -> list[int]:
        """Images-per-class values of Fig. 7, sorted; each must fit in the train split.

        A value equal to the train split's size is the main model itself (no extra job).
        """
        full = self.config["synthetic"]["splits"]["train"]
        grid = sorted(set(int(n) for n in self.scaling.get("ipc", [])))
        too_big = [n for n in grid if n > full]
        if too_big:
            raise ConfigError(
                f"scaling.ipc: {too_big} exceed synthetic.splits.train ({full} per class)"
            )
        real_full = self.config["data"]["splits"]["train"]
        if grid and grid[-1] > real_full:
            raise ConfigError(f"scaling.ipc: {grid[-1]} exceeds data.splits.train ({real_full})")
        return grid

    def scaling_generators(self) -> list[str]:
        """Generators with Fig. 7 curves: ``scaling.generators`` that are in the grid (all by
        default). Ids outside the grid are skipped, not errors: a copy of the paper config that
        narrows its ``generators`` keeps its ``scaling.generators``."""
        chosen = self.scaling.get("generators")
        if chosen is None:
            return list(self.generators)
        unknown = [g for g in chosen if g not in self.registry]
        if unknown:
            raise ConfigError(f"scaling.generators: unknown id(s) {', '.join(unknown)}")
        return [g for g in self.generators if g in chosen]

    def cpc_datasets(self) -> dict[str, tuple[str, str, int, int]]:
        """Reduced captions-per-class datasets: ``{id: (generator, variant, cpc, repeats)}``.

        A CPC dataset (e.g. ``flux-dev-cpc100x5``) has only a train split, made from the first
        ``captions_per_class`` captions of each class, each used ``images_per_caption`` times,
        so it holds as many images as the caption dataset but fewer unique prompts. Only
        with caption prompts and a non-empty IPC grid (it exists to be trained on).
        """
        if "caption" not in self.prompt_types or not self.ipc_grid():
            return {}
        full = self.config["synthetic"]["splits"]["train"]
        out = {}
        for spec in self.scaling.get("cpc", []):
            cpc, k = int(spec["captions_per_class"]), int(spec["images_per_caption"])
            if cpc * k != full:
                raise ConfigError(
                    f"scaling.cpc: {cpc} captions x {k} images = {cpc * k} per class, but "
                    f"synthetic.splits.train is {full}"
                )
            variant = f"cpc{cpc}x{k}"
            for g in self.scaling_generators():
                out[f"{g}-{variant}"] = (g, variant, cpc, k)
        return out

    def scaling_datasets(self) -> dict[str, tuple[str, str]]:
        """Datasets with an IPC curve: ``{id: (generator or real, variant)}``, real first."""
        if not self.ipc_grid():
            return {}
        out: dict[str, tuple[str, str]] = {REAL: (REAL, REAL)}
        gens = set(self.scaling_generators())
        out.update({d: gp for d, gp in self.synthetic.items() if gp[0] in gens})
        out.update({d: (g, v) for d, (g, v, _, _) in self.cpc_datasets().items()})
        return out

    def full_train_ipc(self, dataset: str) -> int:
        """Images per class of ``dataset``'s whole train split (its main model's IPC)."""
        section = self.config["data"] if dataset == REAL else self.config["synthetic"]
        return int(section["splits"]["train"])
