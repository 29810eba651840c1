"""Benchmark synth2real's exact PRDC engine against ``prdc.compute_prdc``.

Each measurement runs in its own subprocess, so the peak RSS it reports (``ru_maxrss`` of
that process) belongs to one implementation alone, and neither run warms caches for the
other. Both see the same seeded random features (standard normal, float32), so the four
values must agree exactly. Each size runs both distances: ``euclidean`` (prdc as is) and
``cosine`` (the paper config's; prdc is given the L2-normalised features in float64, which is
what the engine's cosine equals). Then the engine runs alone at a size prdc cannot hold.

    python tools/bench_prdc.py                      # 2k, 5k, 10k, then 100k
    python tools/bench_prdc.py --sizes 200 --big 500 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

KEYS = ("precision", "recall", "density", "coverage")


def features(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and fake features: the fake set is shifted and widened a little, as in practice."""
    rng = np.random.default_rng([seed, n, dim])
    real = rng.standard_normal((n, dim), dtype=np.float32)
    fake = rng.standard_normal((n, dim), dtype=np.float32) * np.float32(1.05) + np.float32(0.02)
    return real, fake


def child(impl: str, n: int, dim: int, k: int, seed: int, distance: str = "euclidean") -> dict:
    """Run one implementation once in this process and report time, peak RSS and values."""
    real, fake = features(n, dim, seed)
    if impl == "prdc":
        import prdc

        if distance == "cosine":  # prdc has Euclidean only: give it unit vectors
            real, fake = (
                x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
                for x in (real, fake)
            )

        def fn() -> dict:
            with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
                return prdc.compute_prdc(real, fake, nearest_k=k)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "lib"))
        from synth2real.metrics.prdc import compute_prdc

        def fn() -> dict:
            return compute_prdc(real, fake, nearest_k=k, distance=distance)

    usage0 = resource.getrusage(resource.RUSAGE_SELF)  # imports done: time the call alone
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    peak_kib = usage.ru_maxrss  # KiB on Linux
    return {
        "impl": impl,
        "n": n,
        "distance": distance,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mib": peak_kib / 1024,
        "values": {key: float(out[key]) for key in KEYS},
    }


def run_child(impl: str, n: int, args: argparse.Namespace, distance: str = "euclidean") -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--n", str(n), "--distance", distance]
    cmd += ["--dim", str(args.dim), "--k", str(args.k), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} at n={n} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(n: int, distance: str, args: argparse.Namespace) -> dict:
    """prdc and the engine at one size and distance: one table row (and the values if they
    differ)."""
    ref = run_child("prdc", n, args, distance)
    eng = run_child("engine", n, args, distance)
    equal = all(ref["values"][key] == eng["values"][key] for key in KEYS)
    ratio = ref["seconds"] / eng["seconds"]
    cpu_ratio = ref["cpu_seconds"] / max(eng["cpu_seconds"], 1e-9)
    word = "equal" if equal else "DIFFERENT"
    print(
        f"| {n} | {distance} | {ref['seconds']:.2f} | {eng['seconds']:.2f} | {ratio:.1f}x "
        f"| {ref['cpu_seconds']:.1f} | {eng['cpu_seconds']:.1f} | {cpu_ratio:.1f}x "
        f"| {ref['peak_rss_mib']:.0f} | {eng['peak_rss_mib']:.0f} | {word} |",
        flush=True,
    )
    if not equal:
        print(f"  prdc:   {ref['values']}\n  engine: {eng['values']}")
    return {"prdc": ref, "engine": eng, "distance": distance, "equal": equal, "speedup": ratio}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000])
    p.add_argument("--big", type=int, default=100_000, help="engine-only size; 0 skips it")
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write all measurements here")
    p.add_argument("--child", choices=["prdc", "engine"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--distance", default="euclidean", help=argparse.SUPPRESS)
    p.add_argument(
        "--distances", nargs="+", choices=["euclidean", "cosine"], default=["euclidean", "cosine"]
    )
    args = p.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.n, args.dim, args.k, args.seed, args.distance)))
        return 0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"# exact PRDC engine vs prdc.compute_prdc: dim={args.dim}, k={args.k}, "
        f"cpus={os.cpu_count()}, load average at start={load:.1f}"
    )
    # CPU seconds are shown too: on a shared machine prdc's many threads (joblib n_jobs=8
    # times BLAS threads) take a larger share of the cores than the engine's one per core.
    print(
        "| N | distance | prdc s | engine s | speed-up | prdc CPU s | engine CPU s | CPU ratio "
        "| prdc RSS MiB | engine RSS MiB | values |"
    )
    print("|" + "---|" * 11)
    rows, all_equal = [], True
    for n in args.sizes:
        for distance in args.distances:
            row = compare(n, distance, args)
            all_equal &= row["equal"]
            rows.append(row)
    big = None
    if args.big:
        big = run_child("engine", args.big, args)
        print(
            f"engine alone at N={args.big}: {big['seconds']:.1f} s "
            f"({big['cpu_seconds']:.0f} CPU s), peak RSS {big['peak_rss_mib']:.0f} MiB, "
            f"values {big['values']}"
        )
    print(f"all values equal: {all_equal}")
    if args.json:
        args.json.write_text(json.dumps({"sizes": rows, "big": big}, indent=2))
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
