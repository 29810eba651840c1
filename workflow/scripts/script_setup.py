"""Shared start of every Snakemake script: import path and log redirection.

Snakemake puts this directory on ``sys.path``, so scripts ``import script_setup`` and then
the library. Jobs may run in a conda env where the library is not installed, hence the path.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

LIB = Path(__file__).resolve().parent.parent / "lib"
# First on the path, always: a job runs the library beside its Snakefile, never another
# checkout's copy that an editable install or Snakemake's inherited search path may list.
if str(LIB) in sys.path:
    sys.path.remove(str(LIB))
sys.path.insert(0, str(LIB))


#: The rules that reach the Hugging Face hub: they fetch weights. Every other job runs with
#: ``HF_HUB_OFFLINE=1`` and loads weights from ``resources/weights/<id>`` only.
ONLINE_RULES = frozenset({"download_weights"})


def hub_mode(rule: str) -> None:
    """Set ``HF_HUB_OFFLINE`` for this job before anything imports huggingface_hub (which reads
    it once, at import): on for compute jobs, so a job that would reach for the hub fails
    at once instead of downloading on a compute node; off for the download rules, whatever
    the user's shell says. Subprocesses (torchrun ranks) inherit it."""
    os.environ["HF_HUB_OFFLINE"] = "0" if rule in ONLINE_RULES else "1"


def init(snakemake: Any) -> logging.Logger:
    """Send stdout/stderr to the rule's log file, set the job's hub mode (:func:`hub_mode`)
    and cap torch threads at the rule's."""
    hub_mode(snakemake.rule)
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stdout = sys.stderr = log
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    threads = str(getattr(snakemake, "threads", 1))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = threads
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return logging.getLogger(snakemake.rule)


def with_runtime(result: dict[str, Any], section: dict[str, Any]) -> dict[str, Any]:
    """A job's settings: its result settings (``snakemake.params``, the rerun trigger) plus
    the runtime knobs of the same config section (``snakemake.config``, never a trigger)."""
    return {**result, **{k: v for k, v in section.items() if k not in result}}


def device(config: dict[str, Any]) -> str:
    """Resolve ``config['device']`` (auto/cpu/cuda) to a torch device string: pass
    ``snakemake.config`` (the device is a runtime knob, never a job param)."""
    import torch

    want = config.get("device", "auto")
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device=cuda, but no CUDA device is visible to this job")
    return want


def weights_dir(flag: str | os.PathLike[str]) -> Path:
    """The downloaded weights of a hub model: the folder of its ``.complete`` flag (the job's
    input), so where weights live is never a param."""
    return Path(flag).parent


def torch_threads(snakemake: Any) -> None:
    import torch

    torch.set_num_threads(int(snakemake.threads))
