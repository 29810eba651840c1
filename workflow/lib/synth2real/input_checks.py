"""Checks of what a run reads from outside the workflow, cheap enough for the DAG build.

A bad input found inside a job costs a queue wait and a failed job per shard (60 real_data
jobs for a mistyped ImageNet root); found while Snakemake builds the DAG it stops the run
before any job, with one message that says what to do. The same checks run inside the jobs,
so a message reads the same wherever it is raised.

Parse-time module: the Snakefile reads it, so it imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

#: Ground-truth files accepted for a flat ``val/`` folder, in the order they are tried.
GROUND_TRUTH_FILES: tuple[str, ...] = (
    "LOC_val_solution.csv",
    "val_labels.txt",
    "val_annotations.txt",
)


def check_imagenet_root(root: Path) -> None:
    """The root exists and holds ``train/`` and ``val/``."""
    if not root.is_dir():
        raise ValueError(
            f"data.imagenet_root: {root} does not exist; set it to your ILSVRC2012 folder "
            "(the one holding train/ and val/)"
        )
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise ValueError(
                f"data.imagenet_root: {root / sub} is missing; the root must hold train/<wnid>/ "
                "and val/ (class folders, or flat images plus a ground-truth file)"
            )


def find_ground_truth(root: Path) -> Path | None:
    """The first accepted ground-truth file in root/val, root, or up to 3 parents of root."""
    places = [root / "val", root, *list(root.resolve().parents)[:3]]
    for place in places:
        for name in GROUND_TRUTH_FILES:
            if (place / name).is_file():
                return place / name
    return None


def check_val_layout(root: Path, wnids: Sequence[str]) -> Path | None:
    """The official val set's layout: ``None`` for class folders (one per class of
    ``wnids``), else the ground-truth file that labels a flat ``val/``."""
    val = root / "val"
    with os.scandir(val) as entries:
        has_class_dirs = any(entry.is_dir() for entry in entries)
    if has_class_dirs:
        for wnid in wnids:
            if not (val / wnid).is_dir():
                raise ValueError(
                    f"{val / wnid} is missing: val/ is in class folders, so every class of "
                    "data.classes needs one (or use a flat val/ with a ground-truth file)"
                )
        return None
    gt_path = find_ground_truth(root)
    if gt_path is None:
        raise ValueError(
            f"{val} is flat but no ground-truth file was found in {val}, {root} or its "
            f"parents; provide one of {', '.join(GROUND_TRUTH_FILES)} "
            "(see synth2real/data/imagenet.py)"
        )
    return gt_path


def check_imagenet(root: str | os.PathLike[str] | None, wnids: Sequence[str]) -> None:
    """What real_data reads of ``data.imagenet_root``, by directory tests alone: the root,
    ``train/<wnid>/`` for every class and the val layout (about 400 ``stat`` calls for the
    paper's 200 classes; image counts need listings and are left to the jobs)."""
    if not root:
        raise ValueError(
            "data.imagenet_root is not set; point it at your ILSVRC2012 folder "
            "(the one holding train/ and val/)"
        )
    root = Path(root)
    check_imagenet_root(root)
    missing = [w for w in wnids if not (root / "train" / w).is_dir()]
    if missing:
        more = f" ({len(missing)} of the {len(wnids)} classes have none)" if missing[1:] else ""
        raise ValueError(
            f"{root / 'train' / missing[0]} is missing: class {missing[0]} of data.classes "
            f"has no train folder{more}; fix the root or drop the class from the classes TSV"
        )
    check_val_layout(root, wnids)


#: Hosts of the OpenAI API: a server there refuses every request without a key.
OPENAI_HOSTS: tuple[str, ...] = ("openai.com",)
#: The key sent to a server that needs none (the client refuses an empty one).
NO_KEY = "none"


def captions_server(base_url: str | None) -> str:
    """The server the captioner talks to: ``captions.base_url``, else ``OPENAI_BASE_URL``
    (the client's own fallback), else the OpenAI API."""
    return base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


def needs_openai_key(base_url: str | None) -> bool:
    """Whether the captions server surely needs ``OPENAI_API_KEY``: the OpenAI API does.
    Any other server (a local vLLM, the test server) may run without one, and says so
    itself (401) if it does not, so it is not stopped here."""
    host = urlsplit(captions_server(base_url)).hostname or ""
    return any(host == h or host.endswith("." + h) for h in OPENAI_HOSTS)


def check_openai_key(base_url: str | None) -> None:
    """``OPENAI_API_KEY`` is set where the captions server needs one."""
    if os.environ.get("OPENAI_API_KEY") or not needs_openai_key(base_url):
        return
    raise ValueError(
        f"OPENAI_API_KEY is not set, and the captions server {captions_server(base_url)} "
        "needs one: export OPENAI_API_KEY=<your key> in the shell that runs Snakemake (it is "
        "read from the environment only), or set captions.base_url to an OpenAI-compatible "
        "server that needs none (e.g. a local vLLM)"
    )
