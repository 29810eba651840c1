"""The generator registry: which text-to-image models exist and how each one is run.

Every generator is one entry of ``config/generators.yaml`` (validated against
``workflow/schemas/generators.schema.yaml``), so adding a diffusers model is a YAML edit, not a
code change. This module stays free of torch/diffusers imports on purpose: the Snakefile and
its input functions read the registry on every (cluster) job start, and that must be cheap.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

#: Used when neither the entry nor the registry file sets ``output_size`` (the paper's 256 px).
DEFAULT_OUTPUT_SIZE = 256

_SCHEMA_NAME = "generators.schema.yaml"

#: Files a diffusers repo needs: the pipeline index plus each component's config, tokenizer
#: files and safetensors weights. The repos also ship single-file checkpoints at the top level
#: (e.g. ``flux1-dev.safetensors``, ``sd_xl_base_1.0.safetensors``) that duplicate the
#: components; ``*/`` keeps those out and roughly halves the download.
_DIFFUSERS_ALLOW = [
    "model_index.json",
    "*/*.json",
    "*/*.txt",
    "*/*.model",
    "*/*.tiktoken",
]
#: Never needed: the safety checker is disabled on load, and other weight formats duplicate the
#: safetensors files.
_DIFFUSERS_IGNORE = ["safety_checker/*", "*.onnx", "*.onnx_data", "*.msgpack", "*.h5", "*.ckpt"]


class RegistryError(ValueError):
    """The registry file, or the entry asked for, is malformed or missing."""


def schema_path(registry_path: str | os.PathLike[str] | None = None) -> Path:
    """Locate the generator JSON schema (next to the package, or next to the registry's repo)."""
    candidates = [Path(__file__).resolve().parents[2] / "schemas" / _SCHEMA_NAME]
    if registry_path is not None:
        candidates.append(
            Path(registry_path).resolve().parent.parent / "workflow" / "schemas" / _SCHEMA_NAME
        )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise RegistryError(f"cannot find {_SCHEMA_NAME}; looked in: {', '.join(map(str, candidates))}")


#: Keys a registry may no longer set, and why: without this the schema (open to extra keys)
#: would accept them silently, and a run would not do what its registry says.
REMOVED_KEYS = {
    "resize_filter": "real and synthetic images share one resize (bicubic, synth2real.preprocess); "
    "drop the key (docs/fidelity.md row 7)",
}


def _removed_keys(data: Any) -> list[str]:
    """One line per removed key the registry still sets, top level or in an entry."""
    if not isinstance(data, Mapping):
        return []
    entries = data.get("generators")
    places = [("<top>", data)]
    if isinstance(entries, Mapping):
        places += [(f"generators/{g}", e) for g, e in entries.items() if isinstance(e, Mapping)]
    return [
        f"  at {where}: {key} was removed: {why}"
        for where, node in places
        for key, why in REMOVED_KEYS.items()
        if key in node
    ]


def validate_registry(
    data: Mapping[str, Any], schema_file: str | os.PathLike[str] | None = None
) -> None:
    """Raise :class:`RegistryError` naming the offending entry if ``data`` breaks the schema."""
    with open(schema_file or schema_path(), encoding="utf-8") as fh:
        schema = yaml.safe_load(fh)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    lines = _removed_keys(data) + [
        f"  at {'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}" for e in errors
    ]
    if lines:
        raise RegistryError("generator registry is invalid:\n" + "\n".join(lines))


def normalise_spec(
    gen_id: str,
    entry: Mapping[str, Any],
    output_size: int | None = None,
    jpeg_quality: int | None = None,
) -> dict[str, Any]:
    """Fill an entry's defaults so downstream code never has to guess.

    The returned dict carries its own ``id`` and ``output_size`` because one spec dict travels
    alone through load/generate/benchmark and gets recorded in every shard's metadata.
    """
    spec = copy.deepcopy(dict(entry))
    spec["id"] = gen_id
    spec.setdefault("output_size", output_size if output_size is not None else DEFAULT_OUTPUT_SIZE)
    spec.setdefault("jpeg_quality", jpeg_quality)
    spec.setdefault("guidance_arg", "guidance_scale")
    spec.setdefault("guidance_kind", "cfg")
    spec["pipeline_kwargs"] = dict(spec.get("pipeline_kwargs") or {})
    spec.setdefault("gated", False)
    spec.setdefault("geneval", None)
    return spec


def load_registry(path: str | os.PathLike[str], validate: bool = True) -> dict[str, dict[str, Any]]:
    """Read a generator registry YAML into ``{id: spec}``, defaults filled, file order kept."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, Mapping):
        raise RegistryError(f"{path}: expected a mapping with a `generators` key")
    if validate:
        validate_registry(data, schema_path(path))
    size, jpeg = data.get("output_size"), data.get("jpeg_quality")
    return {gid: normalise_spec(gid, e, size, jpeg) for gid, e in data["generators"].items()}


def generator_spec(path: str | os.PathLike[str], gen_id: str) -> dict[str, Any]:
    """One generator's normalised spec; the error lists the known ids."""
    registry = load_registry(path)
    if gen_id not in registry:
        raise RegistryError(f"unknown generator {gen_id!r}; known: {', '.join(registry)}")
    return registry[gen_id]


def cfg_factor(spec: Mapping[str, Any]) -> int:
    """Denoiser passes per step and image: 2 under real classifier-free guidance, else 1.

    Pipelines only run the unconditional branch when guidance is > 1; distilled guidance
    (FLUX) is an embedding and costs nothing extra. Used for FLOP and GPU-hour estimates.
    """
    kind = spec.get("guidance_kind", "cfg")
    return 2 if kind == "cfg" and float(spec["guidance_scale"]) > 1.0 else 1


def download_patterns(spec: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(allow_patterns, ignore_patterns)`` for ``snapshot_download`` of this generator.

    With a weight ``variant`` (e.g. fp16) only that variant's weights are fetched, otherwise
    the SDXL repos bring fp32 and fp16 copies of every component (~3x the bytes).
    """
    dl = spec.get("download") or {}
    if "allow_patterns" in dl:
        allow = list(dl["allow_patterns"])
    else:
        variant = spec.get("variant")
        weights = [f"*/*.{variant}.safetensors"] if variant else ["*/*.safetensors"]
        allow = _DIFFUSERS_ALLOW + weights
    ignore = list(dl.get("ignore_patterns", _DIFFUSERS_IGNORE))
    return allow, ignore


def sort_by_release(registry: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Generator ids ordered by release date (the x-axis of the paper's Fig. 1), ties by id."""
    return sorted(registry, key=lambda g: (str(registry[g].get("release_date", "")), g))
