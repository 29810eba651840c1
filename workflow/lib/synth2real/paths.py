"""Every output path of a run, written once: the rules' outputs and the getters' inputs.

A path retyped in a rule and in a getter that asks for it can drift apart, and then
Snakemake reports a missing input far from the typo. Here each file kind is one method of
:class:`RunPaths`; its arguments default to the rule's wildcards, so the same call gives the
rule's template (``paths.model()``) and a concrete path (``paths.model("real", "rgb",
"resnet50")``). The paths themselves are interfaces (users, tools and the tests read them):
renaming one is a breaking change.

Parse-time module: the Snakefile reads it, so it imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where a hub model's weights are marked complete (shared by runs: outside ``results/``); the
#: weights are the files beside it. Ids: synth2real.weights.
WEIGHTS_FLAG = "resources/weights/{weights}/.complete"


def weights_flag(weights: str = "{weights}") -> str:
    """The flag rule download_weights writes once a hub model's weights are local (JSON: the
    repo, the asked revision and the commit downloaded)."""
    return WEIGHTS_FLAG.format(weights=weights)


@dataclass(frozen=True)
class RunPaths:
    """The files of one run, under ``root`` (``results/<run>``)."""

    root: str

    @classmethod
    def of_run(cls, run: str) -> RunPaths:
        """The paths of run ``run`` (the config's ``run`` key), relative to the workdir."""
        return cls(f"results/{run}")

    # ------------------------------------------------------------ logs and benchmarks
    def log(self, stem: str) -> str:
        """A job's log: ``stem`` is ``<rule>/<wildcards...>`` (the rule name first)."""
        return f"{self.root}/logs/{stem}.log"

    def benchmark(self, stem: str) -> str:
        """A job's benchmark table, named like its log."""
        return f"{self.root}/benchmarks/{stem}.tsv"

    # ----------------------------------------------------------------------- data
    def data_shard(
        self, dataset: str = "{dataset}", split: str = "{split}", shard: str = "{shard}"
    ) -> str:
        return f"{self.root}/data/{dataset}/{split}/shard-{shard}.parquet"

    def captions(self, split: str = "train") -> str:
        """Captions of one real split: train's keep the table's first name, val and test
        (captioned with ``captions.held_out``) are named after their split."""
        if split == "train":
            return f"{self.root}/captions/captions.parquet"
        return f"{self.root}/captions/captions-{split}.parquet"

    def caption_failures(self) -> str:
        return f"{self.root}/captions/failures.csv"

    def prompts(self, synth: str = "{synth}", split: str = "{split}") -> str:
        return f"{self.root}/prompts/{synth}/{split}.parquet"

    def digits_ddpm(self) -> str:
        """The demo generator's trained model (a directory)."""
        return f"{self.root}/generators/digits-ddpm/model"

    def probe_view(
        self, probe: str = "{probe}", dataset: str = "{dataset}", split: str = "{split}"
    ) -> str:
        """A probe's view of a split: a directory with the split's shard names."""
        return f"{self.root}/probes/{probe}/{dataset}/{split}"

    # ------------------------------------------------------------- models and evals
    def model(
        self, dataset: str = "{dataset}", probe: str = "{probe}", arch: str = "{arch}"
    ) -> str:
        return f"{self.root}/models/{dataset}/{probe}/{arch}/model.pt"

    def history(
        self, dataset: str = "{dataset}", probe: str = "{probe}", arch: str = "{arch}"
    ) -> str:
        return f"{self.root}/models/{dataset}/{probe}/{arch}/history.csv"

    def eval_csv(
        self,
        dataset: str = "{dataset}",
        probe: str = "{probe}",
        arch: str = "{arch}",
        test_dataset: str = "{test_dataset}",
    ) -> str:
        return f"{self.root}/eval/{dataset}/{probe}/{arch}/{test_dataset}.csv"

    def checkpoint(
        self, dataset: str = "{dataset}", probe: str = "{probe}", arch: str = "{arch}"
    ) -> str:
        """Where a training job resumes from (not an output: removed when training ends)."""
        return f"{self.root}/checkpoints/{dataset}/{probe}/{arch}.pt"

    def summary(self) -> str:
        return f"{self.root}/summary.csv"

    def results_table(self) -> str:
        return f"{self.root}/tables/results.csv"

    # -------------------------------------------------------------------- metrics
    def features(self, dataset: str = "{dataset}") -> str:
        return f"{self.root}/features/{dataset}.npz"

    def adherence(self, synth: str = "{synth}") -> str:
        """The judge adherence of a synthetic train set (the digits' GenEval stand-in)."""
        return f"{self.root}/metrics/adherence/{synth}.csv"

    def reference_features(self, split: str) -> str:
        """Features of a real split other than train: density/coverage's reference
        (``metrics.reference``); real train's are :meth:`features`."""
        return f"{self.root}/features/real.{split}.npz"

    def distribution(self, synth: str = "{synth}") -> str:
        return f"{self.root}/metrics/distribution/{synth}.csv"

    def distribution_per_class(self, synth: str = "{synth}") -> str:
        return f"{self.root}/metrics/distribution/{synth}.per_class.csv"

    def distribution_table(self) -> str:
        """Every synthetic dataset's distribution metrics in one table."""
        return f"{self.root}/distribution.csv"

    def spectrum(self, dataset: str = "{dataset}") -> str:
        return f"{self.root}/metrics/spectra/{dataset}.csv"

    def clipscore(self, synth: str = "{synth}") -> str:
        return f"{self.root}/metrics/clipscore/{synth}.csv"

    # ------------------------------------------------------------ figures and tables
    def figure(self, name: str = "{name}", ext: str = "png") -> str:
        """A run figure (``figures/<name>.<ext>``; sidecar csv beside png and pdf)."""
        return f"{self.root}/figures/{name}.{ext}"

    def samples(self, synth: str = "{synth}", ext: str = "png") -> str:
        return self.figure(f"samples/{synth}", ext)

    def samples_table(self, prompt_type: str = "{prompt_type}", ext: str = "png") -> str:
        return self.figure(f"samples_table/{prompt_type}", ext)

    def samples_prompts(self, generator: str = "{generator}", ext: str = "png") -> str:
        return self.figure(f"samples_prompts/{generator}", ext)

    def spectra_slopes(self) -> str:
        return f"{self.root}/tables/spectra.csv"

    def results_markdown(self) -> str:
        return f"{self.root}/tables/results.md"

    def ipc_table(self) -> str:
        return f"{self.root}/tables/ipc.csv"

    def caption_samples(self) -> str:
        """Paper Table 3: sample captions, as Markdown."""
        return f"{self.root}/tables/caption_samples.md"

    def run_config(self) -> str:
        return f"{self.root}/report/config.yaml"

    def run_versions(self) -> str:
        return f"{self.root}/report/versions.csv"

    # ------------------------------------------------------------- generator pages
    def page_dir(self, generator: str = "{generator}") -> str:
        return f"{self.root}/generators/{generator}"

    def page_figure(
        self, name: str = "{name}", ext: str = "png", generator: str = "{generator}"
    ) -> str:
        return f"{self.page_dir(generator)}/figures/{name}.{ext}"

    def page_results(self, generator: str = "{generator}") -> str:
        return f"{self.page_dir(generator)}/results.csv"

    def page(self, generator: str = "{generator}") -> str:
        return f"{self.page_dir(generator)}/page.md"

    # ------------------------------------------------ scaling (Fig. 7): under scaling/
    # The scaling runs mirror the main grid's layout under scaling/, an IPC model's dataset
    # being ``<dataset>/ipc<n>``: one template per file kind, shared by both.
    @property
    def scaling(self) -> RunPaths:
        """The main grid's layout rooted at ``scaling/`` (CPC data, IPC models and evals)."""
        return RunPaths(f"{self.root}/scaling")

    def cpc_prompts(self, synth: str = "{synth}") -> str:
        return f"{self.scaling.root}/prompts/{synth}.parquet"

    def cpc_shard(
        self, synth: str = "{synth}", split: str = "{split}", shard: str = "{shard}"
    ) -> str:
        return self.scaling.data_shard(synth, split, shard)

    def ipc_subset(self, dataset: str = "{dataset}", ipc: int | str = "{ipc}") -> str:
        return f"{self.scaling.root}/subsets/{dataset}/ipc{ipc}"

    def ipc_model(
        self,
        dataset: str = "{dataset}",
        ipc: int | str = "{ipc}",
        probe: str = "{probe}",
        arch: str = "{arch}",
    ) -> str:
        return self.scaling.model(f"{dataset}/ipc{ipc}", probe, arch)

    def ipc_history(
        self,
        dataset: str = "{dataset}",
        ipc: int | str = "{ipc}",
        probe: str = "{probe}",
        arch: str = "{arch}",
    ) -> str:
        return self.scaling.history(f"{dataset}/ipc{ipc}", probe, arch)

    def ipc_checkpoint(
        self,
        dataset: str = "{dataset}",
        ipc: int | str = "{ipc}",
        probe: str = "{probe}",
        arch: str = "{arch}",
    ) -> str:
        return self.scaling.checkpoint(f"{dataset}/ipc{ipc}", probe, arch)

    def ipc_eval(
        self,
        dataset: str = "{dataset}",
        ipc: int | str = "{ipc}",
        probe: str = "{probe}",
        arch: str = "{arch}",
        test_dataset: str = "{test_dataset}",
    ) -> str:
        return self.scaling.eval_csv(f"{dataset}/ipc{ipc}", probe, arch, test_dataset)
