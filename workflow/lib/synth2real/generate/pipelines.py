"""Run a text-to-image generator over a shard of prompts and store the images as one shard.

Three steps, each one function, shared by every diffusers model in ``config/generators.yaml``:

* :func:`download_weights` fetches a hub repo into a local directory (on a login node: every
  other job runs with ``HF_HUB_OFFLINE=1``); it serves CLIP and the depth model too;
* :func:`load_pipeline` builds the diffusers pipeline class named by the registry entry from
  that directory, so a new generator is a new YAML entry and nothing else;
* :func:`generate_shard` turns prompt rows into a contract-conforming Parquet shard. Each row has
  its own seeded generator, so a row's image does not depend on the batch it was computed in,
  on the batch size, or on whether the batch size was halved after an out-of-memory error
  (beyond float rounding: a batched kernel can differ in the last bit, rarely one uint8 step).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from synth2real.io import remove_stale_temps
from synth2real.preprocess import store_image
from synth2real.registry import RegistryError, download_patterns
from synth2real.shards import write_shard

log = logging.getLogger(__name__)

#: Columns a prompt row must have to become a shard row.
ROW_COLUMNS: tuple[str, ...] = ("class_id", "label", "prompt", "seed", "source_id")

_DTYPES = ("bfloat16", "float16", "float32")


class WeightsDownloadError(RuntimeError):
    """A generator's weights could not be fetched; the message says what the user must do."""


# --------------------------------------------------------------------------------------------
# download


@dataclass(frozen=True)
class WeightsSnapshot:
    """Where a generator's weights were put, and exactly which commit of which repo they are."""

    path: Path
    repo_id: str
    revision: str | None  # as the registry asked (None = the default branch)
    commit: str  # the resolved 40-hex commit that was downloaded

    def record(self) -> dict[str, str | None]:
        """What the ``.complete`` flag stores (JSON): the run page shows the commits."""
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit}


def download_weights(
    spec: Mapping[str, Any],
    dest_dir: str | os.PathLike[str],
    token_env: str = "HF_TOKEN",
    endpoint: str | None = None,
) -> WeightsSnapshot:
    """Fetch a hub repo (``spec``: ``repo_id``, optional ``revision``, ``variant`` and
    ``download`` patterns) into ``dest_dir``; return the directory and its commit.

    Meant for a login node with internet: GPU jobs later load the directory with
    ``HF_HUB_OFFLINE=1``, so a compute node never needs a token or a network. The token is read
    only from the environment variable ``token_env`` (never from a token file a `hf auth login`
    left behind, so the workflow's check for it is exact) and is never logged or put in
    messages. Only the files the loader reads are fetched (:func:`download_patterns`: a
    diffusers pipeline's by default). ``endpoint`` (default: ``HF_ENDPOINT``) is the hub.

    The registry's ``revision`` (a branch, tag or commit; default branch when absent) is first
    resolved to its commit, and that commit is what is downloaded: a branch moving during the
    download cannot mix two commits, and the record names exactly what was fetched (with
    ``local_dir`` there is no ``snapshots/<sha>`` folder to read it from).
    """
    from huggingface_hub import HfApi, snapshot_download

    repo_id = spec.get("repo_id")
    if not repo_id:
        raise RegistryError(f"generator {spec.get('id', '?')!r} has no repo_id to download")
    token = os.environ.get(token_env) or False  # False: no token file either
    allow, ignore = download_patterns(spec)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s (revision %s) into %s", repo_id, spec.get("revision", "main"), dest)
    try:
        api = HfApi(endpoint=endpoint)
        commit = api.model_info(repo_id, revision=spec.get("revision"), token=token).sha
        path = snapshot_download(
            repo_id=repo_id,
            revision=commit,
            local_dir=dest,
            token=token,
            allow_patterns=allow,
            ignore_patterns=ignore,
            endpoint=endpoint,
        )
    except Exception as err:
        explained = _explain_download_error(err, spec, bool(token), token_env)
        if explained is None:
            raise
        raise explained from err
    log.info("%s at commit %s", repo_id, commit)
    return WeightsSnapshot(Path(path), repo_id, spec.get("revision"), commit)


def _explain_download_error(
    err: Exception, spec: Mapping[str, Any], token_set: bool, token_env: str
) -> WeightsDownloadError | None:
    """The hub's refusal as a message that says what to do (never the token); None for an
    error that is not the hub's or the network's."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import httpx

    repo_id = spec["repo_id"]
    how = (
        f"  1. open https://huggingface.co/{repo_id} while logged in and accept the license "
        "(gated repos);\n"
        f"  2. create a read token at https://huggingface.co/settings/tokens and export it as "
        f"{token_env} (it is read from the environment only, never from config files);\n"
        "  3. run `snakemake weights --cores 1 --configfile <your config>` on a login node "
        "that has internet (compute jobs run with HF_HUB_OFFLINE=1)."
    )
    state = f"{token_env} is set" if token_set else f"{token_env} is not set"
    if isinstance(err, GatedRepoError):
        msg = f"{repo_id} is gated: the hub refused access ({state}). To fix:\n{how}"
    elif isinstance(err, RepositoryNotFoundError):
        msg = (
            f"{repo_id} was not found on the hub (or is private and no valid token was sent). "
            "Check the repo id (config/generators.yaml, metrics.clip_model, probes.<name>.model);"
            f" if it is private or gated:\n{how}"
        )
    elif isinstance(err, RevisionNotFoundError):
        msg = f"{repo_id} has no revision {spec.get('revision')!r}; fix that `revision`."
    elif isinstance(err, OfflineModeIsEnabled | LocalEntryNotFoundError | httpx.TransportError):
        msg = (
            f"cannot reach the hub to download {repo_id} (offline mode or no network: "
            f"{type(err).__name__}). Unset HF_HUB_OFFLINE and run this on a machine with "
            f"internet:\n{how}"
        )
    elif isinstance(err, HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", "?")
        msg = (
            f"the hub answered {status} ({type(err).__name__}) while downloading {repo_id} "
            f"({state}). If it is 401/403:\n{how}"
        )
    else:
        return None
    return WeightsDownloadError(msg)


# --------------------------------------------------------------------------------------------
# load


def resolve_dtype(dtype: Any) -> Any:
    """Map ``"bfloat16"``/``"float16"``/``"float32"`` (or a torch dtype) to a torch dtype."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    return getattr(torch, dtype)


def _has_variant(path_or_repo: str, variant: str) -> bool:
    """Whether a local directory holds ``variant`` weight files (repo ids are assumed to)."""
    path = Path(path_or_repo)
    if not path.is_dir():
        return True
    return any(f".{variant}." in p.name for p in path.rglob("*.safetensors"))


def load_pipeline(
    spec: Mapping[str, Any],
    path_or_repo: str | os.PathLike[str],
    device: Any = "cpu",
    dtype: Any = None,
    *,
    attention_backend: str | None = None,
    vae_slicing: bool | None = None,
) -> Any:
    """Build the diffusers pipeline ``spec["pipeline"]`` from a local directory or a hub id.

    One loader for every family, so the registry entry is the only per-model knowledge:

    * the class is looked up by name on :mod:`diffusers`;
    * safety checkers are not loaded and SDXL's invisible watermark is off: both would alter or
      blank out training images, and the checker costs memory for nothing here;
    * a ``scheduler`` named in the spec replaces the repo's (from the repo's scheduler config),
      as the official code did for SD 2.1;
    * attention stays on PyTorch SDPA (diffusers' default); ``attention_backend`` picks another
      diffusers attention backend (e.g. ``"flash"``) on the denoiser where supported;
    * on CUDA the VAE decodes one image at a time (``vae_slicing``; default on for CUDA), which
      caps the decode's memory peak (SDXL at 1024 px) at no measurable speed cost;
    * the pipeline's own progress bar is silenced: :func:`generate_shard` shows one per shard.
    """
    import diffusers
    import torch

    name = spec["pipeline"]
    cls = getattr(diffusers, name, None)
    if cls is None or not hasattr(cls, "from_pretrained"):
        raise RegistryError(f"diffusers {diffusers.__version__} has no pipeline class {name!r}")
    torch_dtype = resolve_dtype(dtype if dtype is not None else spec.get("dtype", "float32"))
    source = str(path_or_repo)
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype
    }  # diffusers >= 0.4x: `torch_dtype` is deprecated
    if "safety_checker" in params:
        kwargs["safety_checker"] = None
    if "requires_safety_checker" in params:
        kwargs["requires_safety_checker"] = False
    if "add_watermarker" in params:
        kwargs["add_watermarker"] = False
    variant = spec.get("variant")
    if variant and _has_variant(source, variant):
        kwargs["variant"] = variant
    if Path(source).is_dir():
        kwargs["local_files_only"] = True
    elif spec.get("revision"):
        kwargs["revision"] = spec["revision"]
    pipe = cls.from_pretrained(source, **kwargs)

    if spec.get("scheduler"):
        sched_cls = getattr(diffusers, spec["scheduler"], None)
        if sched_cls is None:
            raise RegistryError(f"diffusers has no scheduler class {spec['scheduler']!r}")
        pipe.scheduler = sched_cls.from_config(pipe.scheduler.config)

    pipe = pipe.to(device)
    is_cuda = torch.device(device).type == "cuda"
    vae = getattr(pipe, "vae", None)
    if (vae_slicing if vae_slicing is not None else is_cuda) and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    if attention_backend:
        denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
        if denoiser is None or not hasattr(denoiser, "set_attention_backend"):
            raise ValueError(f"{name} has no denoiser that supports set_attention_backend")
        denoiser.set_attention_backend(attention_backend)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------------------------
# generate


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (N, H, W, 3) to uint8 exactly as diffusers' ``numpy_to_pil`` does."""
    images = np.nan_to_num(np.asarray(images, dtype=np.float32), nan=0.0)
    return (np.clip(images, 0.0, 1.0) * 255).round().astype(np.uint8)


def oom_backoff(
    items: Sequence[Any],
    batch_size: int,
    run: Callable[[Sequence[Any]], Any],
    oom_errors: tuple[type[BaseException], ...] | None = None,
    on_oom: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, Sequence[Any], Any]]:
    """Yield ``(start, chunk, run(chunk))`` over ``items``, halving the batch on out-of-memory.

    A too-large batch should cost a retry, not the job (GPU jobs are long and the right batch
    size depends on the card). The batch size never grows back: memory pressure that caused one
    OOM usually persists. At batch size 1 the error is re-raised. ``on_oom(old, new)`` is called
    on every halving (logging, stats).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if oom_errors is None:
        import torch

        oom_errors = (torch.cuda.OutOfMemoryError,)
    start = 0
    while start < len(items):
        chunk = items[start : start + batch_size]
        try:
            result = run(chunk)
        except oom_errors:
            if batch_size == 1:
                raise
            new = max(1, batch_size // 2)
            if on_oom is not None:
                on_oom(batch_size, new)
            batch_size = new
            _free_cuda_cache()
            continue
        yield start, chunk, result
        start += len(chunk)


def _free_cuda_cache() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _as_rows(rows: pa.Table | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(rows, pa.Table):
        return rows.to_pylist()
    return [dict(r) for r in rows]


def _skipped(out: Path, batch_size: int) -> dict[str, Any]:
    """:func:`generate_shard`'s result for a shard that is already complete."""
    return {
        "skipped": True,
        "images": 0,
        "seconds": 0.0,
        "images_per_s": 0.0,
        "batch_size": batch_size,
        "oom_retries": 0,
        "out_path": str(out),
    }


def _throughput(
    out: Path, n: int, seconds: float, batch_size: int, oom_retries: int
) -> dict[str, Any]:
    """:func:`generate_shard`'s result for a shard it wrote; ``batch_size`` is the final one,
    halved once per out-of-memory retry."""
    return {
        "skipped": False,
        "images": n,
        "seconds": seconds,
        "images_per_s": n / seconds if seconds > 0 else float("inf"),
        "batch_size": max(1, batch_size >> oom_retries),
        "oom_retries": oom_retries,
        "out_path": str(out),
    }


def _checked_rows(rows: pa.Table | Sequence[Mapping[str, Any]], out: Path) -> list[dict[str, Any]]:
    """The prompt rows as dicts; fails on an empty slice or missing contract columns."""
    table_rows = _as_rows(rows)
    if not table_rows:
        raise ValueError(f"no prompt rows for shard {out}")
    missing = [c for c in ROW_COLUMNS if c not in table_rows[0]]
    if missing:
        raise ValueError(f"prompt rows lack column(s): {', '.join(missing)}")
    return table_rows


def _call_kwargs(spec: Mapping[str, Any], res: int) -> dict[str, Any]:
    """Keyword arguments of the pipeline call: the registry's extras, then steps, size, numpy
    output and the guidance scale under the pipeline's own argument name."""
    call_kwargs = dict(spec.get("pipeline_kwargs") or {})
    call_kwargs.update(
        num_inference_steps=int(spec["steps"]), height=res, width=res, output_type="np"
    )
    call_kwargs[spec.get("guidance_arg", "guidance_scale")] = float(spec["guidance_scale"])
    return call_kwargs


def generate_shard(
    pipe: Any,
    spec: Mapping[str, Any],
    rows: pa.Table | Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    batch_size: int,
    device: Any = "cpu",
    *,
    dataset: str | None = None,
    split: str | None = None,
    shard: int | None = None,
    generator_device: Any = "cpu",
    progress: bool = True,
    oom_errors: tuple[type[BaseException], ...] | None = None,
) -> dict[str, Any]:
    """Generate one image per prompt row and write them atomically as a shard; return throughput.

    ``rows`` needs ``class_id, label, prompt, seed, source_id`` (a prompt table slice from
    :func:`synth2real.prompts.tables.shard_rows`); its other columns (``class_name``, ``dataset``,
    ``split``, ``row``, ...) are carried into the shard. Each row's noise comes from its own
    ``torch.Generator(generator_device).manual_seed(seed)``; the default CPU generator makes the
    initial noise identical on every machine (CUDA generators draw a different stream), at a
    negligible cost. Images are stored by :func:`synth2real.preprocess.store_image`, the path
    real images take too: downsampled to ``spec["output_size"]`` (bicubic, antialiased), PNG;
    ``spec["jpeg_quality"]`` (None: off) first round-trips them through JPEG at the generation
    resolution, as the official code saved them.

    If ``out_path`` already exists the shard is complete (it is written by rename) and the call
    returns at once with ``skipped=True``: a rerun after preemption redoes only missing shards.
    """
    import torch

    out = Path(out_path)
    if out.exists():
        return _skipped(out, batch_size)
    remove_stale_temps(out)  # free a killed writer's disk before hours of generation

    table_rows = _checked_rows(rows, out)
    res = int(spec["resolution"])
    size = int(spec.get("output_size", res))
    jpeg_quality = spec.get("jpeg_quality")
    call_kwargs = _call_kwargs(spec, res)

    def run(chunk: Sequence[Mapping[str, Any]]) -> np.ndarray:
        gens = [torch.Generator(generator_device).manual_seed(int(r["seed"])) for r in chunk]
        with torch.inference_mode():
            out_images = pipe(
                prompt=[r["prompt"] for r in chunk], generator=gens, **call_kwargs
            ).images
        return to_uint8(np.asarray(out_images))

    stats = {"oom_retries": 0}

    def on_oom(old: int, new: int) -> None:
        stats["oom_retries"] += 1
        log.warning("out of GPU memory at batch size %d; retrying with %d", old, new)

    images: list[bytes] = [b""] * len(table_rows)
    where = "/".join(str(x) for x in (dataset, split, shard) if x is not None)
    desc = f"{spec.get('id', spec['pipeline'])} {where}".strip()
    t0 = time.perf_counter()
    with _progress(len(table_rows), desc, progress) as bar:
        for start, chunk, batch in oom_backoff(table_rows, batch_size, run, oom_errors, on_oom):
            if len(batch) != len(chunk):
                raise RuntimeError(
                    f"pipeline returned {len(batch)} images for {len(chunk)} prompts"
                )
            for k, img in enumerate(batch):
                images[start + k] = store_image(img, size, jpeg_quality)
            bar.update(len(chunk))
    seconds = time.perf_counter() - t0

    columns = _shard_columns(table_rows, images, spec, res, size, dataset, split, shard)
    write_shard(columns, out)
    return _throughput(out, len(table_rows), seconds, batch_size, stats["oom_retries"])


def _shard_columns(
    rows: list[dict[str, Any]],
    images: list[bytes],
    spec: Mapping[str, Any],
    resolution: int,
    size: int,
    dataset: str | None,
    split: str | None,
    shard: int | None,
) -> dict[str, list[Any]]:
    """Contract columns plus what it takes to regenerate any row (generator and its settings)."""
    n = len(rows)
    cols: dict[str, list[Any]] = {"image": images}
    for name in ROW_COLUMNS:
        cols[name] = [r[name] for r in rows]
    cols["generator"] = [str(spec.get("id", spec["pipeline"]))] * n
    cols["steps"] = [int(spec["steps"])] * n
    cols["guidance_scale"] = [float(spec["guidance_scale"])] * n
    cols["resolution"] = [resolution] * n
    cols["output_size"] = [size] * n
    cols["dataset"] = [r.get("dataset", dataset) for r in rows]
    cols["split"] = [r.get("split", split) for r in rows]
    cols["shard"] = [shard] * n
    cols["row"] = [int(r.get("row", i)) for i, r in enumerate(rows)]
    for name in rows[0]:
        if name not in cols:
            cols[name] = [r.get(name) for r in rows]
    return cols


class _progress:
    """A tqdm bar on stderr (Snakemake logs capture it), or a no-op when disabled."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=not enabled)

    def __enter__(self) -> Any:
        return self._bar

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
