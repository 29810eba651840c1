"""What a run used: its config and software versions, recorded for the report.

A figure is only as reproducible as the record of what made it, so the report carries the
effective config (the ``--configfile`` with ``--config`` overrides and schema defaults) and
three sets of versions: the pinned per-rule conda envs, what the reporting interpreter really
ran, and the hub commit of every generator's weights (hub repos move: the paper's SD 2.1 repo
was removed).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

#: Packages whose installed versions are recorded (those the library imports).
PACKAGES = (
    "snakemake", "torch", "torchvision", "timm", "transformers", "diffusers", "openai",
    "pandas", "numpy", "pyarrow", "scikit-learn", "seaborn", "matplotlib", "pillow",
)  # fmt: skip


def config_yaml(config: Mapping[str, Any]) -> str:
    """The effective config as YAML (plain types: Snakemake's config is a dict subclass)."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return yaml.safe_dump(plain(config), sort_keys=False)


def env_pins(env_files: Sequence[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """``name==version`` pins of each conda env file (the versions rules run with --sdm conda)."""
    rows = []
    for path in env_files:
        spec = yaml.safe_load(Path(path).read_text()) or {}
        deps = []
        for d in spec.get("dependencies", []):
            deps.extend(d.get("pip", []) if isinstance(d, Mapping) else [d])
        for d in deps:
            name, _, version = str(d).replace("==", "=").partition("=")
            rows.append({"source": f"envs/{Path(path).name}", "package": name, "version": version})
    return rows


def weights_commits(flags: Sequence[str | os.PathLike[str]]) -> list[dict[str, str]]:
    """One row per hub generator: ``<id> (<repo>[@<revision>])`` and the commit downloaded,
    read from its ``.complete`` flag (rule download_weights); an empty flag is from before
    commits were recorded."""
    rows = []
    for flag in flags:
        path = Path(flag)
        text = path.read_text().strip() if path.exists() else ""
        generator = path.parent.name
        if not text:
            rows.append({"source": "weights", "package": generator, "version": "unrecorded"})
            continue
        rec = json.loads(text)
        repo = rec["repo_id"] + (f"@{rec['revision']}" if rec.get("revision") else "")
        rows.append(
            {"source": "weights", "package": f"{generator} ({repo})", "version": rec["commit"]}
        )
    return rows


def software_versions(
    env_files: Sequence[str | os.PathLike[str]],
    weight_flags: Sequence[str | os.PathLike[str]] = (),
) -> pd.DataFrame:
    """Installed versions in this interpreter, every env file's pins, then weights commits."""
    rows = [
        {"source": "runtime", "package": "python", "version": platform.python_version()},
        {"source": "runtime", "package": "platform", "version": platform.platform()},
    ]
    for pkg in PACKAGES:
        try:
            version = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"source": "runtime", "package": pkg, "version": version})
    rows += env_pins(env_files)
    rows += weights_commits(weight_flags)
    return pd.DataFrame(rows, columns=["source", "package", "version"])
