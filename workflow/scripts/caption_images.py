"""Caption real images with an OpenAI(-compatible) vision model (issue 4).

Thin entry point around :mod:`synth2real.captions.runner`: parse arguments (or read them from a
Snakemake ``script:`` job), set up logging that redacts the API key, call the library, exit
non-zero on failure. The API key is read from ``OPENAI_API_KEY`` only. Train shards go to
``--out``; val and test shards (``captions.held_out``), if given, to their own tables, all
requested in one pass.

    python workflow/scripts/caption_images.py --shards real/train/*.parquet \\
        --out captions.parquet --failures caption_failures.csv --cache-dir cache/captions \\
        --config config/config.yaml [--dry-run]

Without shards, ``--dry-run --images N --image-px S`` estimates N images of S x S px (the
workflow's real shards are square), e.g. before any data exists.
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

try:
    import synth2real  # noqa: F401 (import check)
except ImportError:  # running as a plain script: put the library next to us on the path
    _smk = globals().get("snakemake")
    _scripts = Path(_smk.scriptdir) if _smk is not None else Path(__file__).parent
    sys.path.insert(0, str(_scripts.resolve().parent / "lib"))

import yaml

from synth2real.caption_cost import estimate_summary
from synth2real.caption_settings import WORKFLOW_KEYS
from synth2real.captions.core import RedactingFilter
from synth2real.captions.cost import estimate_cost
from synth2real.captions.runner import (
    CaptionError,
    CaptionSettings,
    CostEstimate,
    caption_tables,
    dry_run,
    load_clip_tokenizer,
    prompt_token_stats,
)
from synth2real.io import atomic_write_bytes, write_csv_atomic, write_table_atomic

log = logging.getLogger("synth2real.captions.runner")

#: Held-out splits with their own shards and caption table (``--<split>-shards/-out``).
HELD_OUT_SPLITS = ("val", "test")

#: Flags that override single settings (flag dest -> settings field).
OVERRIDES = (
    "model",
    "base_url",
    "mode",
    "instruction",
    "concurrency",
    "timeout_s",
    "max_retries",
    "refusal_retries",
    "image_size",
    "output_tokens_mean",
    "max_failure_fraction",
)


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option also reachable from Snakemake, see ``snakemake_argv``)."""
    # Not __doc__: under Snakemake's preamble the module has none.
    p = argparse.ArgumentParser(description="Caption real images with an OpenAI-compatible model.")
    p.add_argument("--shards", nargs="+", default=[], help="real-data (train) Parquet shards")
    p.add_argument("--out", help="caption table to write (Parquet)")
    for split in HELD_OUT_SPLITS:
        p.add_argument(f"--{split}-shards", nargs="+", default=[], help=f"real {split} shards")
        p.add_argument(f"--{split}-out", help=f"caption table of the {split} shards")
    p.add_argument("--failures", help="failures report to write (CSV)")
    p.add_argument("--cache-dir", required=True, help="caption journal and batch state")
    p.add_argument("--config", help="YAML file; its 'captions:' section (or the whole file)")
    p.add_argument("--config-section", default="captions")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting"
    )
    p.add_argument("--model")
    p.add_argument("--base-url")
    p.add_argument("--mode", choices=["online", "batch"])
    p.add_argument(
        "--instruction",
        help="a preset ('paper', 'official', 'table3') or a custom instruction text",
    )
    p.add_argument("--concurrency", type=int)
    p.add_argument("--timeout-s", type=float)
    p.add_argument("--max-retries", type=int)
    p.add_argument("--refusal-retries", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--output-tokens-mean", type=float)
    p.add_argument("--max-failure-fraction", type=float)
    p.add_argument("--classes", help="class table (TSV/CSV) for caption prompts")
    p.add_argument("--class-id-column", default="wnid")
    p.add_argument("--class-name-column", default="name")
    p.add_argument("--prompts-out", help="caption prompts to write (Parquet)")
    p.add_argument("--prompt-stats-out", help="CLIP 77-token statistics to write (TSV)")
    p.add_argument("--clip-tokenizer", help="local CLIP tokenizer directory")
    p.add_argument("--dry-run", action="store_true", help="estimate requests and cost only")
    p.add_argument("--dry-run-out", help="also write the estimate here (JSON)")
    p.add_argument("--sample", type=int, default=2000, help="images sized by the dry run")
    p.add_argument("--images", type=int, help="dry run without shards: this many images...")
    p.add_argument("--image-px", type=int, help="...of this many px square")
    p.add_argument("--log", help="log file (default: stderr)")
    p.add_argument("--no-progress", action="store_true")
    return p


def load_settings(args: argparse.Namespace) -> CaptionSettings:
    """Settings from the config file, then ``--set`` pairs, then the single-setting flags."""
    config: dict[str, Any] = {}
    if args.config:
        data = yaml.safe_load(Path(args.config).read_text()) or {}
        config = dict(data.get(args.config_section, data))
        for key in WORKFLOW_KEYS:
            config.pop(key, None)
    for pair in args.set:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CaptionError(f"--set expects KEY=VALUE, got {pair!r}")
        config[key.strip()] = yaml.safe_load(value)
    for name in OVERRIDES:
        value = getattr(args, name)
        if value is not None:
            config[name] = value
    return CaptionSettings.from_mapping(config)


def setup_logging(path: str | None) -> None:
    """Log to a file or stderr through a filter that redacts the API key."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler()
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log)
    try:
        settings = load_settings(args)
        if args.dry_run:
            report_estimate(estimate(args, settings), settings, args.dry_run_out)
            return 0
        tables = output_tables(args)
        shards = [shard for group in tables.values() for shard in group]
        # What the run is about to spend, in its log before anything is sent.
        log_estimate(dry_run(shards, settings, args.cache_dir, 200), settings)
        caption_tables(
            tables,
            args.failures,
            args.cache_dir,
            settings,
            progress=not args.no_progress,
        )
        write_prompt_outputs(args)
    except (CaptionError, OSError, KeyError, ValueError) as exc:
        log.error("captioning failed: %s", exc)
        return 1
    return 0


def output_tables(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each caption table to write, with the shards it describes (train, then val, test)."""
    if not (args.shards and args.out and args.failures):
        raise CaptionError("--shards, --out and --failures are required unless --dry-run")
    tables = {args.out: args.shards}
    for split in HELD_OUT_SPLITS:
        shards, out = getattr(args, f"{split}_shards"), getattr(args, f"{split}_out")
        if bool(shards) != bool(out):
            raise CaptionError(f"--{split}-shards and --{split}-out go together")
        if shards:
            tables[out] = shards
    return tables


def estimate(args: argparse.Namespace, settings: CaptionSettings) -> CostEstimate:
    """The dry run: of every shard given (all splits), or of ``--images`` square images."""
    if args.images is not None:
        if args.image_px is None:
            raise CaptionError("--images needs --image-px")
        return estimate_cost([(args.image_px, args.image_px)], settings, n_requests=args.images)
    shards = [*args.shards, *(s for x in HELD_OUT_SPLITS for s in getattr(args, f"{x}_shards"))]
    if not shards:
        raise CaptionError("--dry-run needs shards, or --images and --image-px")
    return dry_run(shards, settings, args.cache_dir, args.sample)


def report_estimate(
    estimate: CostEstimate, settings: CaptionSettings, out: str | None = None
) -> None:
    """Print the estimate as JSON (and write it to ``out``), and log its one-line summary."""
    text = json.dumps(estimate.to_dict(), indent=1)
    print(text)
    if out:
        atomic_write_bytes(out, (text + "\n").encode())
    log_estimate(estimate, settings)


def log_estimate(estimate: CostEstimate, settings: CaptionSettings) -> None:
    """One log line: requests (images not cached), tokens and dollars, with the preset (the
    line the workflow's dry run prints, synth2real.caption_cost)."""
    log.info("%s", estimate_summary(estimate, settings))


def write_prompt_outputs(args: argparse.Namespace) -> None:
    """Caption prompts and their CLIP statistics, when asked for."""
    if not (args.prompts_out or args.prompt_stats_out):
        return
    if not args.classes:
        raise CaptionError("--classes is needed for --prompts-out / --prompt-stats-out")
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synth2real.prompts.plan import classes_from_file
    from synth2real.prompts.tables import caption_prompt_rows

    classes = classes_from_file(args.classes, args.class_id_column, args.class_name_column)
    # The prompt tables' own rows: the statistics describe what the generators are given.
    prompts = pd.DataFrame(caption_prompt_rows(classes, pq.read_table(args.out)))
    if args.prompts_out:
        table = pa.Table.from_pandas(
            prompts[["image_id", "class_id", "prompt"]], preserve_index=False
        )
        write_table_atomic(table, args.prompts_out)
    if args.prompt_stats_out:
        if not args.clip_tokenizer:
            raise CaptionError("--clip-tokenizer is needed for --prompt-stats-out")
        stats = prompt_token_stats(prompts, load_clip_tokenizer(args.clip_tokenizer))
        write_csv_atomic(stats, args.prompt_stats_out, sep="\t", float_format="%.6g")
        overall = stats.iloc[-1]
        log.info(
            "%d of %d caption prompt(s) exceed 77 CLIP tokens (%.1f%%)",
            overall["n_over"],
            overall["n_prompts"],
            100 * overall["frac_over"],
        )


def snakemake_argv(smk: Any) -> list[str]:
    """Arguments from a Snakemake job: input.shards/val_shards/test_shards/classes/
    clip_tokenizer, output.captions/val_captions/test_captions/failures/prompts/prompt_stats,
    params.captions (settings dict)/cache_dir, log[0]."""
    argv = ["--shards", *map(str, smk.input.shards), "--cache-dir", str(smk.params.cache_dir)]
    argv += ["--out", str(smk.output.captions), "--failures", str(smk.output.failures)]
    for split in HELD_OUT_SPLITS:
        if smk.input.get(f"{split}_shards"):
            argv += [f"--{split}-shards", *map(str, smk.input.get(f"{split}_shards"))]
            argv += [f"--{split}-out", str(smk.output.get(f"{split}_captions"))]
    optional = {
        "--classes": smk.input.get("classes"),
        "--clip-tokenizer": smk.input.get("clip_tokenizer"),
        "--prompts-out": smk.output.get("prompts"),
        "--prompt-stats-out": smk.output.get("prompt_stats"),
    }
    for flag, value in optional.items():
        if value:
            argv += [flag, str(value)]
    # Result settings from params (the rerun trigger), runtime knobs (concurrency, retries,
    # mode, prices...) from the config: changing those never reruns the captions.
    settings = dict(smk.params.get("captions") or {})
    for key, value in dict(smk.config.get("captions") or {}).items():
        settings.setdefault(key, value)
    for key in WORKFLOW_KEYS:
        settings.pop(key, None)
    for key, value in settings.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]
    if smk.log:
        argv += ["--log", str(smk.log[0])]
    return argv + ["--no-progress"]


if "snakemake" in globals():
    sys.exit(main(snakemake_argv(globals()["snakemake"])))
elif __name__ == "__main__":
    sys.exit(main())
