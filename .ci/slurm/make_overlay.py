#!/usr/bin/env python3
"""Build the CI SLURM profile: profiles/slurm deep-merged with .ci/slurm/overlay/config.yaml.

Snakemake profiles replace top-level keys instead of merging them, so a second `--profile`
with `default-resources: {slurm_partition: debug}` would drop every memory and runtime
default of the real profile. Instead this script writes one complete profile directory:

    python .ci/slurm/make_overlay.py --out /tmp/synth2real-slurm/profile
    snakemake --profile /tmp/synth2real-slurm/profile ...

Merge rules: mappings merge key by key (recursively), everything else is replaced by the
overlay. The overlay's `x-clamp` section (not a Snakemake option) then caps resources in
`default-resources` and every rule of `set-resources` to what the one CI node can give, so
that the real per-rule requests (8 CPUs and 64 GB for a GPU rule) still schedule on it
(`threads` caps `set-threads`):
an int becomes min(value, cap); an expression such as "4000 * attempt" becomes
"min(4000 * attempt, cap)", so the retry growth stays visible. `mem_mb: auto` means half of
the node's RealMemory (from `scontrol show node`) less the controller job's
CONTROLLER_MEM_MB, so two jobs fit beside the controller.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CLAMP_KEY = "x-clamp"
#: Memory of the controller job (run_stage.sh submits it with --mem of this), beside the jobs.
CONTROLLER_MEM_MB = 1024


def deep_merge(base: dict, over: dict) -> dict:
    """Return base with over merged in: dicts recursively, other values replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def node_real_memory_mb() -> int:
    """RealMemory of the (single) node, from scontrol."""
    text = subprocess.run(
        ["scontrol", "show", "node", "-o"], check=True, capture_output=True, text=True
    ).stdout
    values = [int(m) for m in re.findall(r"RealMemory=(\d+)", text)]
    if not values:
        sys.exit(f"make_overlay: no RealMemory in `scontrol show node`:\n{text}")
    return min(values)


def clamp_value(value: Any, cap: int) -> Any:
    """Cap one resource value (int or Python expression string) at cap."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return min(value, cap)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            return min(int(text), cap)
        return f"min({text}, {cap})"
    return value


def clamp_resources(resources: dict, caps: dict[str, int]) -> dict:
    return {
        key: clamp_value(value, caps[key]) if key in caps else value
        for key, value in resources.items()
    }


def resolve_caps(raw: dict) -> dict[str, int]:
    caps: dict[str, int] = {}
    for key, value in raw.items():
        if value == "auto":
            if key != "mem_mb":
                sys.exit(f"make_overlay: 'auto' is only understood for mem_mb, not {key}")
            caps[key] = (node_real_memory_mb() - CONTROLLER_MEM_MB) // 2
        else:
            caps[key] = int(value)
    return caps


def build(base: dict, overlay: dict, mem_cap: int | None) -> dict:
    overlay = dict(overlay)
    raw_caps = overlay.pop(CLAMP_KEY, {}) or {}
    if mem_cap is not None:
        raw_caps["mem_mb"] = mem_cap
    for name in ("default_resources", "set_resources", "set_threads"):
        if name in base or name in overlay:
            sys.exit(f"make_overlay: write '{name.replace('_', '-')}', not '{name}'")
    merged = deep_merge(base, overlay)
    caps = resolve_caps(raw_caps)
    if caps:
        thread_cap = caps.pop("threads", None)
        if thread_cap is not None and merged.get("set-threads"):
            merged["set-threads"] = {
                rule: clamp_value(n, thread_cap) for rule, n in merged["set-threads"].items()
            }
        if "default-resources" in merged:
            merged["default-resources"] = clamp_resources(merged["default-resources"], caps)
        for rule, resources in (merged.get("set-resources") or {}).items():
            merged["set-resources"][rule] = clamp_resources(resources, caps)
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=REPO / "profiles/slurm/config.yaml")
    ap.add_argument("--overlay", type=Path, default=REPO / ".ci/slurm/overlay/config.yaml")
    ap.add_argument("--out", type=Path, required=True, help="profile directory to write")
    ap.add_argument("--mem-cap-mb", type=int, default=None, help="override x-clamp mem_mb")
    args = ap.parse_args()

    base = yaml.safe_load(args.base.read_text()) or {}
    overlay = yaml.safe_load(args.overlay.read_text()) or {}
    merged = build(base, overlay, args.mem_cap_mb)

    args.out.mkdir(parents=True, exist_ok=True)
    # Other files of the base profile (e.g. a partition file) come along unchanged.
    for extra in args.base.parent.iterdir():
        if extra.name != args.base.name and extra.is_file():
            shutil.copy2(extra, args.out / extra.name)
    header = (
        f"# GENERATED by .ci/slurm/make_overlay.py from {args.base.name} + "
        f"{args.overlay.relative_to(REPO) if args.overlay.is_relative_to(REPO) else args.overlay}"
        " -- do not edit\n"
    )
    text = yaml.safe_dump(merged, sort_keys=False, default_flow_style=False)
    (args.out / "config.yaml").write_text(header + text)


if __name__ == "__main__":
    main()
