"""Which settings are rerun triggers: result settings go into a job's params, the rest never.

Snakemake reruns a job whose params changed since it ran. So a job's params must hold exactly
the settings that can change its output. The schemas say which settings cannot, in one place:

- ``x-runtime: true`` (config schema): how a job runs, never what it computes: loader workers,
  threads, device, decoded caches, the batch size of batch-invariant generation, the
  captioner's concurrency, timeouts, retries, mode and prices, and where the ImageNet folder
  lives (what is selected from it is a result setting).
- ``x-metadata: true`` (generator registry schema): how figures and pages name and place a
  generator (display name, release date, GenEval score); generation never reads it.

Jobs read their result settings from ``snakemake.params`` and runtime knobs from
``snakemake.config`` (every script job has it, and it is no rerun trigger). Parse-time code:
yaml only, no torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

RUNTIME = "x-runtime"
METADATA = "x-metadata"


def load_schema(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML JSON schema as a dict."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _resolve(node: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow local ``$ref`` pointers (``#/$defs/...``); anything else is an empty schema."""
    while isinstance(node, Mapping) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $ref pointers are supported, got {ref!r}")
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
    return node if isinstance(node, Mapping) else {}


def subschema(schema: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
    """The schema of the value at ``path`` (keys through ``properties``, else
    ``additionalProperties``); an empty schema where the schema says nothing."""
    node = _resolve(schema, schema)
    for key in path:
        props = node.get("properties", {})
        node = _resolve(props.get(key, node.get("additionalProperties")), schema)
    return node


def strip_marked(
    value: Any, node: Mapping[str, Any], root: Mapping[str, Any], marks: Sequence[str]
) -> Any:
    """``value`` without the keys whose schema carries one of ``marks``, at any depth.

    Key order is kept: Snakemake compares params by their repr, so a reordered dict would
    count as a change.
    """
    if not isinstance(value, Mapping):
        return value
    node = _resolve(node, root)
    props, extra = node.get("properties", {}), node.get("additionalProperties")
    out = {}
    for key, item in value.items():
        child = _resolve(props.get(key, extra), root)
        if any(child.get(m) for m in marks):
            continue
        out[key] = strip_marked(item, child, root, marks)
    return out


def marked_paths(
    schema: Mapping[str, Any], mark: str, node: Any = None, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every path whose schema carries ``mark`` (``*`` for any key of additionalProperties)."""
    node = _resolve(schema if node is None else node, schema)
    out = []
    children = dict(node.get("properties", {}))
    if isinstance(node.get("additionalProperties"), Mapping):
        children["*"] = node["additionalProperties"]
    for key, child in children.items():
        child = _resolve(child, schema)
        if child.get(mark):
            out.append((*prefix, key))
        else:
            out += marked_paths(schema, mark, child, (*prefix, key))
    return out


class ResultSettings:
    """Result settings of a validated config, by path: what job params are built from."""

    def __init__(self, config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
        self.config = config
        self.schema = schema

    def __call__(self, *path: str, default: Any = None) -> Any:
        """The config value at ``path`` without its runtime keys (``default`` if absent)."""
        value: Any = self.config
        for key in path:
            if not isinstance(value, Mapping) or key not in value:
                return default
            value = value[key]
        node = subschema(self.schema, path)
        if node.get(RUNTIME):
            raise KeyError(f"{'.'.join(path)} is a runtime setting, never a job param")
        return strip_marked(value, node, self.schema, [RUNTIME])


def generator_settings(spec: Mapping[str, Any], registry_schema: Mapping[str, Any]) -> dict:
    """A registry entry without its figure metadata: what generating or downloading reads."""
    node = subschema(registry_schema, ("generators", "*"))
    return strip_marked(spec, node, registry_schema, [METADATA])
