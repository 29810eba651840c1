"""Checks of what a run reads from outside the workflow, cheap enough for the DAG build.

A bad input found inside a job costs a queue wait and a failed job per shard (60 real_data
jobs for a mistyped ImageNet root); found while Snakemake builds the DAG it stops the run
before any job, with one message that says what to do. The same checks run inside the jobs,
so a message reads the same wherever it is raised.

Parse-time module: the Snakefile reads it, so it imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

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
