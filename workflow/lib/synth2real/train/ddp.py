"""Several GPUs: re-run a training job as DDP ranks under ``torchrun``.

Each rank takes its share of every *global* batch (so the effective batch stays
``batch_size``), and only rank 0 writes checkpoints and outputs.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def rank_world() -> tuple[int, int]:
    """(rank, world size) inside a process group, (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_device(device: str, world: int) -> str:
    """Under DDP on CUDA, each rank trains on the GPU of its ``LOCAL_RANK``."""
    if world > 1 and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return device


def wrap_ddp(model: nn.Module, device: str, world: int) -> nn.Module:
    """The module the loss runs through: ``model`` itself, or its DDP wrapper in a group."""
    if world == 1:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None
    )


def launch_distributed(nproc: int, job: dict[str, Any]) -> None:
    """Run ``train_classifier(**job)`` as ``nproc`` DDP ranks under ``torchrun``.

    Why a re-launch: a Snakemake script is one process, but DDP wants one process per GPU
    with a rendezvous; ``torchrun --standalone`` provides both on one node. The job is passed
    as a pickled dict in a temp file; backend NCCL on CUDA, gloo on CPU (tests).
    """
    # The directory holding the synth2real package (this file is synth2real/train/...), so
    # the ranks import this checkout's library, not whatever else is installed.
    lib = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([lib, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="synth2real-ddp-") as tmp:
        spec = Path(tmp) / "job.pt"
        torch.save(job, spec)
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", "-m", "synth2real.train.ddp_rank", str(spec),
        ]  # fmt: skip
        print("launching:", " ".join(cmd), flush=True)
        out = _fileno(sys.stdout)
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=_fileno(sys.stderr) or out)
        if proc.returncode:
            raise RuntimeError(f"torchrun with {nproc} processes failed (exit {proc.returncode})")


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def distributed_main(spec_path: str) -> None:
    """One torchrun rank: join the process group and train (see :func:`launch_distributed`)."""
    job = torch.load(spec_path, weights_only=False)
    backend = "nccl" if str(job.get("device", "cpu")).startswith("cuda") else "gloo"
    # An hour, not NCCL's 10 minutes: the other ranks wait at a barrier while rank 0 builds
    # the decoded cache of a 100k-image split.
    dist.init_process_group(backend, timeout=datetime.timedelta(hours=1))
    from synth2real.train.training import train_classifier  # training imports this module

    try:
        train_classifier(**job)
    finally:
        dist.destroy_process_group()
