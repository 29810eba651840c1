#!/usr/bin/env python
"""How fast does each generator run, how close to the GPU's peak, and what does the grid cost?

Builds every generator's denoiser, text encoders and VAE at full size with random weights from
the architecture configs in ``tools/t2i_architectures/<id>/`` (weights do not change FLOPs),
counts FLOPs per image on the meta device, and on a GPU measures images/s at the configured
steps and resolution for the best batch size, optionally with speed levers:

    fused_qkv         fuse attention Q/K/V projections into one matmul
    compile           torch.compile (compile_repeated_blocks where the model defines blocks)
    channels_last     NHWC memory format (UNets)
    attn=<backend>    a diffusers attention backend (e.g. attn=flash, attn=_native_cudnn)

Each ``--levers`` item is one configuration (``+`` combines levers), measured separately, so the
gain of each lever is visible. Without a GPU (or with ``--no-measure``) speed is estimated from
FLOPs at ``--assumed-mfu`` of ``--peak-tflops``. Examples:

    python tools/bench_t2i_throughput.py                       # estimate, all 14
    python tools/bench_t2i_throughput.py --generators sd15,flux-dev \\
        --levers baseline,fused_qkv,compile,fused_qkv+compile --out bench.tsv  # on a GPU node
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "workflow" / "lib"))

import t2i_bench  # noqa: E402 (beside this script)
import torch  # noqa: E402

from synth2real.registry import load_registry  # noqa: E402

COLUMNS = [
    ("generator", "{}", 22),
    ("levers", "{}", 18),
    ("denoiser_params_b", "{:.3g}", 17),
    ("steps", "{}", 5),
    ("cfg", "{}", 3),
    ("resolution", "{}", 10),
    ("tflop_per_image", "{:.4g}", 15),
    ("batch_size", "{}", 10),
    ("images_per_s", "{:.3g}", 12),
    ("speed_source", "{}", 12),
    ("fraction_of_peak", "{:.2%}", 16),
    ("gpu_hours", "{:,.1f}", 10),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; every default reproduces the paper's grid on an H100 SXM."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--registry", default=str(REPO / "config" / "generators.yaml"))
    p.add_argument(
        "--config-dir",
        default=str(HERE.parent / "t2i_architectures"),
        help="architecture configs: <dir>/<generator id>/ or <dir>/<pipeline class>/",
    )
    p.add_argument(
        "--generators", default="", help="comma-separated ids (default: all in the registry)"
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["bfloat16", "float16", "float32"],
        help="default: bfloat16 on CUDA, float32 on CPU",
    )
    p.add_argument(
        "--measure",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time real forward passes (default: only on CUDA)",
    )
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    p.add_argument(
        "--levers",
        default="baseline",
        help="comma-separated lever sets, e.g. baseline,fused_qkv,compile,fused_qkv+compile",
    )
    p.add_argument(
        "--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 SXM: 989)"
    )
    p.add_argument(
        "--assumed-mfu", type=float, default=0.4, help="fraction of peak assumed when not measured"
    )
    p.add_argument(
        "--prompt-tokens",
        type=int,
        default=77,
        help="prompt length for pipelines that pad to the longest prompt (Qwen-Image)",
    )
    p.add_argument("--classes", type=int, default=200)
    p.add_argument("--train-per-class", type=int, default=500)
    p.add_argument("--val-per-class", type=int, default=50)
    p.add_argument("--test-per-class", type=int, default=50)
    p.add_argument("--prompt-types", type=int, default=2, help="class names and captions")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--out", default=None, help="write the table as TSV (or JSON if it ends in .json)"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print the table and the grid's total GPU-hours; return the rows."""
    args = parse_args(argv)
    registry = load_registry(args.registry)
    ids = [g for g in args.generators.split(",") if g] or list(registry)
    unknown = [g for g in ids if g not in registry]
    if unknown:
        raise SystemExit(
            f"unknown generator(s): {', '.join(unknown)}; known: {', '.join(registry)}"
        )
    is_cuda = torch.device(args.device).type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if is_cuda else "float32"))
    measure = is_cuda if args.measure is None else args.measure
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    lever_sets = [tuple(s.split("+")) for s in args.levers.split(",") if s]
    n_images = t2i_bench.grid_images(
        args.classes,
        args.train_per_class,
        args.val_per_class,
        args.test_per_class,
        args.prompt_types,
    )

    rows = []
    for gid in ids:
        for levers in lever_sets if measure else [("baseline",)]:
            result = t2i_bench.bench_generator(
                registry[gid],
                args.config_dir,
                device=args.device,
                dtype=dtype,
                measure_speed=measure,
                batch_sizes=batch_sizes,
                levers=levers,
                prompt_tokens=args.prompt_tokens,
                warmup=args.warmup,
                repeats=args.repeats,
            )
            row = t2i_bench.summarise(result, args.peak_tflops, n_images, args.assumed_mfu)
            rows.append(row)
            print_row(row, header=len(rows) == 1)

    best: dict[str, dict] = {}
    for row in rows:
        if row["generator"] not in best or row["gpu_hours"] < best[row["generator"]]["gpu_hours"]:
            best[row["generator"]] = row
    total = sum(r["gpu_hours"] for r in best.values())
    print(
        f"\ngrid: {len(best)} generators x {n_images:,} images each "
        f"({args.prompt_types} prompt types x {args.classes} classes x "
        f"({args.train_per_class}+{args.val_per_class}+{args.test_per_class}) per class)"
    )
    print(
        f"total: {total:,.1f} GPU-hours (fastest lever set per generator; "
        f"peak {args.peak_tflops:g} TFLOP/s)"
    )
    if args.out:
        write(rows, Path(args.out))
    return rows


def print_row(row: dict, header: bool) -> None:
    """One aligned line per result; the header before the first."""
    if header:
        print("  ".join(name.ljust(w) for name, _, w in COLUMNS))
    cells = [
        ("-" if row[name] is None else fmt.format(row[name])).ljust(w) for name, fmt, w in COLUMNS
    ]
    print("  ".join(cells), flush=True)
    if row.get("note"):
        print(f"    note: {row['note']}")


def write(rows: list[dict], path: Path) -> None:
    """TSV (default) or JSON, for the report and for regression tracking."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, indent=2))
        return
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
