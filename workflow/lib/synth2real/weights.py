"""Parse-time: every hub model the grid loads, where its weights live, and the checks that
stop a run before any job when they are not there.

Compute jobs never reach the hub. They run with ``HF_HUB_OFFLINE=1`` (``script_setup``) and
load weights only from ``resources/weights/<id>``, which rule ``download_weights`` fills when
the user runs ``snakemake weights`` on a machine with internet (a login node). The ids:

* a hub generator: its registry id (``sd15``, ``flux-dev``, ...);
* CLIP (``metrics.clip_model``) and each depth probe's ``model``: the repo id with ``/``
  written ``--`` (``openai--clip-vit-large-patch14``), so two probes on one model share it.

What a download reads (repo, revision, weight variant, file patterns) is its params, hence
its rerun trigger; where the files go is not. Cheap by design (no torch, no network): the
checks stat a few flag files and read one environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth2real.grid import ConfigError
from synth2real.paths import weights_flag

#: Files a transformers model repo needs (config, processor, tokenizer, safetensors weights);
#: the CLIP repos also hold PyTorch, TensorFlow and Flax copies of the same weights (~5 GB).
TRANSFORMERS_DOWNLOAD: dict[str, list[str]] = {
    "allow_patterns": ["*.json", "*.txt", "*.model", "*.safetensors"],
    "ignore_patterns": ["*.bin", "*.h5", "*.msgpack", "*.onnx", "*.ckpt", "*.pt", "*.pth"],
}
#: The loader of each non-generator model (the local hub builds tiny models by these names).
CLIP, DEPTH = "CLIPModel", "DepthAnything"
TOKEN_ENV = "HF_TOKEN"


@dataclass(frozen=True)
class HubWeights:
    """One hub repo the grid loads: its weights id, where it comes from, and what loads it."""

    id: str
    repo_id: str
    loads: str  # a diffusers pipeline class, CLIP or DEPTH
    revision: str | None = None
    variant: str | None = None
    download: Mapping[str, Sequence[str]] | None = None  # file patterns (registry `download`)
    gated: bool = False

    @property
    def flag(self) -> str:
        return weights_flag(self.id)

    def download_spec(self) -> dict[str, Any]:
        """What rule download_weights reads (its params): repo, revision, variant, patterns."""
        spec: dict[str, Any] = {"repo_id": self.repo_id}
        for key in ("revision", "variant"):
            if getattr(self, key):
                spec[key] = getattr(self, key)
        if self.download:
            spec["download"] = {k: list(v) for k, v in self.download.items()}
        return spec


def model_weights_id(repo_id: str) -> str:
    """The weights id of a transformers model: its repo id, ``/`` written ``--``."""
    return repo_id.replace("/", "--")


def clip_weights(config: Mapping[str, Any]) -> HubWeights:
    """The CLIP model of ``metrics`` (features and CLIPScore)."""
    metrics = config["metrics"]
    repo = metrics["clip_model"]
    return HubWeights(
        model_weights_id(repo), repo, CLIP, metrics.get("clip_revision"), None,
        TRANSFORMERS_DOWNLOAD,
    )  # fmt: skip


def depth_weights(probe: Mapping[str, Any]) -> HubWeights:
    """A depth probe's model."""
    repo = probe["model"]
    return HubWeights(
        model_weights_id(repo), repo, DEPTH, probe.get("revision"), None, TRANSFORMERS_DOWNLOAD
    )


def generator_weights(gen_id: str, spec: Mapping[str, Any]) -> HubWeights:
    """A hub generator's weights, from its registry entry."""
    return HubWeights(
        gen_id, spec["repo_id"], spec["pipeline"], spec.get("revision"), spec.get("variant"),
        spec.get("download"), bool(spec.get("gated")),
    )  # fmt: skip


def needs_clip(grid: Any) -> bool:
    """CLIP is loaded for CLIP features and for CLIPScore (every caption dataset)."""
    metrics = grid.config["metrics"]
    clipscore = "caption" in grid.prompt_types and metrics.get("caption_score") != "attributes"
    return metrics["feature_extractor"] == "clip" or clipscore


def grid_weights(grid: Any) -> dict[str, HubWeights]:
    """Every hub model the grid loads, by weights id: generators (not the demo's own DDPM,
    which the workflow trains), CLIP where it is used, each enabled depth probe's model."""
    out: dict[str, HubWeights] = {}
    for g in grid.generators:
        spec = grid.registry[g]
        if spec.get("repo_id") and spec["pipeline"] != "DigitsDDPM":
            out[g] = generator_weights(g, spec)
    if needs_clip(grid):
        w = clip_weights(grid.config)
        out[w.id] = w
    for name, spec in grid.probes.items():
        if spec["transform"] == "depth":
            if not spec.get("model"):
                raise ConfigError(f"probes.{name}: a depth probe needs a model (a hub repo id)")
            w = depth_weights(spec)
            out.setdefault(w.id, w)
    return out


def missing(weights: Iterable[HubWeights], root: str | os.PathLike[str] = ".") -> list[HubWeights]:
    """The weights whose ``.complete`` flag is not there (never downloaded, or removed)."""
    return [w for w in weights if not (Path(root) / w.flag).is_file()]


def missing_weights_message(absent: Sequence[HubWeights], configfiles: Sequence[str] = ()) -> str:
    """What to do when compute jobs would load weights that are not downloaded."""
    listing = "\n".join(f"  - {w.id} ({w.repo_id})" for w in absent)
    config = "".join(f" --configfile {c}" for c in configfiles)
    gated = [w.id for w in absent if w.gated]
    token = (
        f"\n{', '.join(gated)} {'is' if len(gated) == 1 else 'are'} gated: accept the license on "
        f"the hub page and export {TOKEN_ENV} first."
        if gated
        else ""
    )
    return (
        f"weights are missing for {len(absent)} model(s) this run loads:\n{listing}\n"
        "Compute jobs run offline (HF_HUB_OFFLINE=1) and load weights only from "
        "resources/weights/<id>. Download them first, on a machine with internet (a login "
        f"node):\n  snakemake weights --cores 1{config}{token}"
    )


def gated_without_token(
    to_download: Iterable[HubWeights], environ: Mapping[str, str] | None = None
) -> list[HubWeights]:
    """Gated repos that must be downloaded while ``HF_TOKEN`` is unset (or empty)."""
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV):
        return []
    return [w for w in to_download if w.gated]


def gated_message(gated: Sequence[HubWeights]) -> str:
    """What to do for gated repos without a token (the token itself is never printed)."""
    pages = "\n".join(f"  - {w.id}: https://huggingface.co/{w.repo_id}" for w in gated)
    return (
        f"{len(gated)} repo(s) to download are gated and {TOKEN_ENV} is not set:\n{pages}\n"
        "  1. open each page while logged in and accept the license;\n"
        "  2. create a read token at https://huggingface.co/settings/tokens;\n"
        f"  3. export {TOKEN_ENV}=<token> (read from the environment only) and run "
        "`snakemake weights` again."
    )
