#!/usr/bin/env python
"""One-shot GPU check: what the paper grid will cost on this GPU, in under 8 minutes.

Run it the first time a GPU is available (``make gpu-check``). Each section runs in its own
subprocess with its own time limit, so a crash, a hang or an out-of-memory kill in one prints
``FAILED`` and the others still run; the whole run stays inside ``--budget-s``. It prints:

- ``t2i``: images/s and the fraction of dense bf16 peak of sd15, sdxl and flux-schnell at
  full size with random weights (``tools/t2i_bench.py`` on ``tools/t2i_architectures/``),
  best batch size of a short search;
- ``train``: ResNet-50 and ViT-Ti training images/s with the paper recipe (batch 1024, Adam,
  bf16 autocast, channels-last, 224 px), the GPU step only (``train.loop.train_step`` on
  random batches already on the GPU; the input pipeline is ``tools/bench_loader.py``), with
  the largest micro-batch that fits;
- ``prdc``: the time of exact precision/recall/density/coverage at 100k x 100k CLIP-sized
  features (768-d, cosine, k 5: the paper config) with the project's engine;
- ``oom``: a real CUDA out-of-memory error (a batch too big for the card) that the
  generation back-off survives: the shard is written with the batch halved.

Every result is one ``RESULT section=... key=value ...`` line (``--json`` writes them too).
``--smoke`` runs the same code on the CPU at toy sizes in seconds (the tests run it): tiny
generator architectures (``tests/t2i_tiny.py``), batch 2, 2,000 x 2,000 features, and a
simulated out-of-memory error.

    python tools/gpu_check.py                 # on the GPU node
    python tools/gpu_check.py --smoke         # anywhere, seconds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow" / "lib"))
sys.path.insert(0, str(HERE.parent))

#: Generators of the t2i section and the batch sizes their search tries (full size).
T2I = {"sd15": (1, 4, 16, 32), "sdxl": (1, 2, 4, 8), "flux-schnell": (1, 2, 4)}
TRAIN_ARCHS = ("resnet50", "vit_tiny")
#: Section -> time limit in seconds on the GPU (expected: well under half of it).
SECTIONS = {
    "oom": 60,
    "prdc": 150,
    **{f"train:{a}": 90 for a in TRAIN_ARCHS},
    **{f"t2i:{g}": 150 for g in T2I},
}
#: Dense bf16 peak TFLOP/s by device-name fragment, most specific first.
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
]


def result(section: str, **fields: Any) -> dict[str, Any]:
    """Print one machine-readable result line and return it."""
    cells = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
    print(f"RESULT section={section} {cells}", flush=True)
    return {"section": section, **fields}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace(" ", "_")


def peak_tflops(device_name: str, override: float | None) -> float | None:
    """The card's dense bf16 peak: ``--peak-tflops``, else looked up by name, else None."""
    if override:
        return override
    for fragment, peak in PEAK_TFLOPS:
        if fragment in device_name:
            return peak
    return None


def device_of(smoke: bool) -> str:
    import torch

    if smoke:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible (use --smoke for the CPU check)")
    return "cuda"


# ------------------------------------------------------------------------------ sections
def check_t2i(gid: str, args: argparse.Namespace) -> dict[str, Any]:
    """Images/s and fraction of bf16 peak of one generator at full size, random weights."""
    import t2i_bench
    import torch

    from synth2real.registry import load_registry

    spec = dict(load_registry(REPO / "config" / "generators.yaml")[gid])
    config_dir = args.t2i_config_dir or str(HERE.parent / "t2i_architectures")
    sizes = T2I[gid]
    kwargs = {"warmup": 1, "repeats": 2}
    if args.smoke:  # the tiny family architecture, a few steps at 64 px
        spec.update(resolution=64, steps=2)
        sizes, kwargs = (1, 2), {"warmup": 0, "repeats": 1}
    device = device_of(args.smoke)
    dtype = torch.float32 if args.smoke else torch.bfloat16
    res = t2i_bench.bench_generator(
        spec, config_dir, device=device, dtype=dtype, batch_sizes=sizes, **kwargs
    )
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    row = t2i_bench.summarise(res, peak or 1.0, t2i_bench.grid_images())
    return result(
        f"t2i:{gid}",
        images_per_s=row["images_per_s"],
        fraction_of_peak=row["fraction_of_peak"] if peak else "n/a",
        batch_size=row["batch_size"],
        tflop_per_image=row["tflop_per_image"],
        resolution=res.resolution,
        steps=res.steps,
        cfg=res.cfg,
        peak_tflops=peak or "unknown",
        gpu_hours_per_generator=row["gpu_hours"],
    )


def check_train(arch: str, args: argparse.Namespace) -> dict[str, Any]:
    """Training images/s of ``arch`` under the paper recipe, GPU step only."""
    import torch

    from synth2real.train.recipe import resolve_recipe

    device = device_of(args.smoke)
    batch, steps, warmup, px = (2, 1, 1, 32) if args.smoke else (1024, 10, 3, 224)
    train = {"recipe": "paper", "batch_size": batch, "input_size": px}
    sized = {"img_size": px} if arch.startswith("vit") and args.smoke else None  # timm ViT
    recipe, _ = resolve_recipe(train, "identity", arch, seed=0, arch_kwargs=sized)
    classes = 200
    for micro in (None, 512, 256, 128):
        if micro is not None and micro >= batch:
            continue
        recipe.micro_batch = micro
        try:
            ips = _train_speed(arch, recipe, classes, device, steps, warmup, px)
        except torch.cuda.OutOfMemoryError:
            ips = None
        if ips is None:  # outside the except block: its traceback no longer holds the model
            print(f"{arch}: out of memory at micro-batch {micro or batch}", flush=True)
            _free_cuda()
            continue
        return result(
            f"train:{arch}",
            images_per_s=ips,
            batch_size=batch,
            micro_batch=micro or batch,
            recipe="paper",
            input_px=px,
            optimizer=recipe.optimizer,
        )
    raise RuntimeError(f"{arch}: out of memory even at micro-batch 128")


def _train_speed(
    arch: str, recipe: Any, classes: int, device: str, steps: int, warmup: int, px: int
) -> float:
    """Images/s of ``steps`` optimiser steps after ``warmup`` ones, on random batches."""
    import torch

    from synth2real.train.architectures import build_model
    from synth2real.train.loop import Trainer, train_step
    from synth2real.train.recipe import make_optimizer

    torch.manual_seed(0)
    model = build_model(arch, classes, **recipe.arch_kwargs).to(device)
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)
    model.train()
    t = Trainer(model, model, model, make_optimizer(model, recipe), recipe, classes, device)
    b = recipe.batch_size
    x = torch.randn(b, 3, px, px, device=device)
    y = torch.randint(0, classes, (b,), device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for step in range(warmup):
        train_step(t, x, y, b, 0, step, loss_sum)
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        train_step(t, x, y, b, 0, warmup + step, loss_sum)
    sync()
    seconds = time.perf_counter() - t0
    del model, t
    _free_cuda()
    return steps * b / seconds


def check_prdc(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds of exact PRDC at 100k x 100k (the paper's CLIP features: 768-d, cosine)."""
    import bench_prdc

    from synth2real.metrics.prdc import compute_prdc

    device = device_of(args.smoke)
    n = 2000 if args.smoke else 100_000
    real, fake = bench_prdc.features(n, 768 if not args.smoke else 64, seed=0)
    t0 = time.perf_counter()
    values = compute_prdc(real, fake, nearest_k=5, distance="cosine", device=device)
    seconds = time.perf_counter() - t0
    return result("prdc", n=n, seconds=seconds, device=device, **values)


def check_oom(args: argparse.Namespace) -> dict[str, Any]:
    """A real CUDA OOM inside generation: the back-off halves the batch and the shard is
    written whole. On the CPU (smoke) the OOM is simulated with MemoryError."""
    import numpy as np

    from synth2real.generate.pipelines import generate_shard
    from synth2real.shards import load_split

    device = device_of(args.smoke)
    pipe, per_image = _memory_hog(device)
    spec = {"id": "oom-check", "pipeline": "OOMCheck", "steps": 1, "resolution": 8}
    spec["guidance_scale"] = 1.0
    rows = [
        {"class_id": "c0", "label": 0, "prompt": "p", "seed": i, "source_id": f"s{i}"}
        for i in range(8)
    ]
    errors = (MemoryError,) if device == "cpu" else None  # None: torch.cuda.OutOfMemoryError
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "shard-00000.parquet"
        stats = generate_shard(pipe, spec, rows, out, 8, progress=False, oom_errors=errors)
        images, labels = load_split([str(out)])
    if stats["oom_retries"] < 1:
        raise RuntimeError(f"no out-of-memory error was provoked: {stats}")
    if len(images) != len(rows) or not np.all(labels == 0):
        raise RuntimeError(f"the shard after the back-off is incomplete: {len(images)} rows")
    return result(
        "oom",
        survived=True,
        oom_retries=stats["oom_retries"],
        final_batch_size=stats["batch_size"],
        images=stats["images"],
        bytes_per_image=per_image,
        simulated=device == "cpu",
    )


def _memory_hog(device: str) -> tuple[Callable[..., Any], int]:
    """A pipeline whose batch of n prompts allocates n x 40% of the free GPU memory, so a
    batch of 8 or 4 fails for real and a batch of 2 fits (``pipe(...).images``)."""
    import numpy as np

    if device == "cpu":
        per_image = 1 << 20

        def allocate(n: int) -> None:
            if n > 2:
                raise MemoryError(f"simulated: {n} x {per_image} bytes")
    else:
        import torch

        free, _ = torch.cuda.mem_get_info()
        per_image = int(free * 0.4)

        def allocate(n: int) -> None:
            block = torch.empty(n * per_image, dtype=torch.uint8, device="cuda")
            block.fill_(1)
            del block

    class Out:
        def __init__(self, n: int) -> None:
            self.images = np.full((n, 8, 8, 3), 0.5, dtype=np.float32)

    def pipe(prompt: list[str], generator: Any = None, **_: Any) -> Out:
        allocate(len(prompt))
        return Out(len(prompt))

    return pipe, per_image


def _free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_section(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one section in this process (the child side of :func:`main`)."""
    kind, _, what = name.partition(":")
    if kind == "t2i":
        return check_t2i(what, args)
    if kind == "train":
        return check_train(what, args)
    if kind == "prdc":
        return check_prdc(args)
    if kind == "oom":
        return check_oom(args)
    raise ValueError(f"unknown section {name!r}; known: {', '.join(SECTIONS)}")


# ------------------------------------------------------------------------------ driver
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--smoke", action="store_true", help="CPU, toy sizes, seconds")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset")
    p.add_argument(
        "--budget-s", type=float, default=None, help="wall-clock limit (470 s; --smoke 1800 s)"
    )
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak override")
    p.add_argument(
        "--t2i-config-dir",
        default=None,
        help="architecture configs (default tools/t2i_architectures; --smoke: tiny ones)",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--section", default=None, help=argparse.SUPPRESS)  # child mode
    return p.parse_args(argv)


def child_command(name: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(HERE), "--section", name]
    if args.smoke:
        cmd.append("--smoke")
    if args.peak_tflops:
        cmd += ["--peak-tflops", str(args.peak_tflops)]
    if args.t2i_config_dir:
        cmd += ["--t2i-config-dir", args.t2i_config_dir]
    return cmd


def run_child(name: str, args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """One section in a subprocess, killed after ``limit`` seconds; its output is relayed."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            child_command(name, args), capture_output=True, text=True, timeout=limit
        )
    except subprocess.TimeoutExpired as err:
        tail = (err.stdout or b"")[-2000:]
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        print(tail, end="")
        return failed(name, f"timed out after {limit:.0f} s")
    print(proc.stdout, end="", flush=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(f"RESULT section={name} ")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(proc.stderr[-3000:], file=sys.stderr)
        return failed(name, f"exit {proc.returncode}: {err}")
    fields = dict(cell.split("=", 1) for cell in lines[-1].split()[1:])
    return {**fields, "ok": True, "seconds_total": round(time.perf_counter() - t0, 1)}


def failed(name: str, why: str) -> dict[str, Any]:
    print(f"FAILED section={name} {why}", flush=True)
    return {"section": name, "ok": False, "error": why}


def main(argv: list[str] | None = None) -> int:
    """Run every section in its own process within the budget; 0 when all passed."""
    args = parse_args(argv)
    if args.section:
        run_section(args.section, args)
        return 0
    names = [s for s in args.sections.split(",") if s]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke and not args.t2i_config_dir and any(n.startswith("t2i") for n in names):
            args.t2i_config_dir = tiny_architectures(tmp)
        results = run_all(names, args)
    ok = sum(r["ok"] for r in results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if ok == len(results) else 1


def run_all(names: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each section in its own process, each within its limit and what is left of the budget."""
    start = time.perf_counter()
    budget = args.budget_s or (1800.0 if args.smoke else 470.0)
    results = []
    for name in names:
        left = budget - (time.perf_counter() - start)
        # smoke: toy sizes, but on a shared CPU the imports alone can take minutes
        limit = min(300.0 if args.smoke else SECTIONS[name], left)
        if limit < 10:
            results.append(failed(name, f"skipped: {left:.0f} s of the budget left"))
            continue
        print(f"== {name} (limit {limit:.0f} s)", flush=True)
        results.append(run_child(name, args, limit))
    ok = sum(r["ok"] for r in results)
    total = time.perf_counter() - start
    print(f"gpu-check: {ok} of {len(results)} sections passed in {total:.0f} s", flush=True)
    return results


def tiny_architectures(dest: str) -> str:
    """The tiny component configs of every family (tests/t2i_tiny.py) under ``dest``: the
    smoke run's stand-in for tools/t2i_architectures."""
    sys.path.insert(0, str(REPO / "tests"))
    import t2i_tiny

    return str(t2i_tiny.write_tiny_architectures(Path(dest) / "tiny"))


if __name__ == "__main__":
    sys.exit(main())
