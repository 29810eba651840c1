"""Exact precision / recall / density / coverage (Naeem et al., 2020) at 100k-sample scale.

``prdc.compute_prdc`` builds three dense N x N distance matrices (plus temporaries), which
is fine at 10k samples (~1.5 GB) but needs over 100 GB at the paper's 100k. This engine gives
the *same four numbers* (bit for bit: same radii, same strict ``<``) while holding only one
block per worker thread.

How it stays both fast and exact:

1. **Fast pass (float32 GEMM).** Distances are computed block by block from float32 copies of
   the (centred, power-of-two scaled) features. Every float32 value comes with a rigorous
   error bound (the standard ``gamma_n`` bound of a dot product, which holds for any summation
   order, so for any BLAS or GPU kernel as long as TF32 is off). A decision such as
   "d(i, j) < r_i" whose margin exceeds the bound is taken from the float32 value.
2. **Exact pass (float64, sklearn's formula).** The rare pairs that fall inside the bound are
   recomputed exactly the way ``sklearn.metrics.pairwise_distances`` (which prdc calls) does:
   ``-2 x.y + |x|^2 + |y|^2`` in float64, clipped at zero, square-rooted, and rounded to
   float32 first when both inputs are float32 (sklearn's upcast path). So float32 ties, which
   do occur at 10k x 10k, resolve exactly as in prdc.

Radii follow prdc: the k-th neighbour of a point excluding itself (prdc takes index k of the
sorted row, whose index 0 is the zero self-distance). Threshold hits are rare, so they are
found by one float32 comparison pass per block against thresholds rounded outward, then
checked in float64; blocks run on parallel threads, each with single-threaded BLAS. Only a
pair whose distance ties a threshold at float64 resolution (not float32: those ties are
reproduced) could differ from prdc, because prdc's own value there depends on its BLAS's
summation order.

Two array backends run the same engine (:class:`_NumpyOps`, :class:`_TorchOps`): on the CPU
(the default, what the distribution jobs use) it is NumPy alone, so a job that computes
density and coverage never imports torch (2 CPU-seconds of its start-up); ``device="cuda"``
runs it on a GPU through torch. Both give the same four values (tests/test_distribution.py).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["compute_prdc", "default_chunk_size", "per_class_prdc"]

_U32 = 2.0**-24
_U64 = 2.0**-53
#: Block edges are multiples of this many rows (aligned SIMD-friendly GEMM panels).
_TILE = 16
#: Neighbours kept per point beyond k, so the exact k-th neighbour is almost always among them.
_EXTRA = 3
#: Pairs recomputed in float64 per batch (bounds the memory of the exact pass).
_EXACT_BATCH = 16384
_METRICS = ("euclidean", "cosine")

Array = Any  # a NumPy array or a torch tensor, by backend


def default_chunk_size(device: Any = None) -> int:
    """Block edge that keeps a CPU block (16 MiB) in L3 cache, or feeds a GPU well."""
    return 8192 if _is_cuda(device) else 2048


def compute_prdc(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    nearest_k: int = 5,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device: Any = None,
    workers: int | None = None,
) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` w.r.t. ``real`` (Naeem et al. 2020).

    Returns exactly what ``prdc.compute_prdc(real, fake, nearest_k)`` returns for
    ``distance="euclidean"`` (same keys, same values, as Python floats), without ever holding
    an N x N matrix. ``distance="cosine"`` uses ``1 - cos(x, y)`` computed in float64 (as
    ``sklearn.metrics.pairwise_distances(metric="cosine")`` does on float64 input) with the same
    formulas. ``chunk_size`` is the block edge (memory ~ workers * chunk_size^2 * 4 bytes);
    ``device`` is ``None``/``"cpu"`` (NumPy) or a torch device such as ``"cuda"``;
    ``workers`` (CPU only) is the number of blocks processed in parallel, by default the number
    of CPUs this process may use.
    """
    if distance not in _METRICS:
        raise ValueError(f"distance must be one of {_METRICS}, got {distance!r}")
    k = int(nearest_k)
    if k < 1:
        raise ValueError(f"nearest_k must be >= 1, got {nearest_k}")
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dims differ: real {real.shape[1]}, fake {fake.shape[1]}")
    for name, arr in (("real_features", real), ("fake_features", fake)):
        if arr.shape[0] < k + 1:
            raise ValueError(f"{name} needs more than nearest_k={k} rows, got {arr.shape[0]}")
    chunk = int(chunk_size) if chunk_size is not None else default_chunk_size(device)
    chunk = max(chunk, 2 * (k + _EXTRA) + 2, 2 * _TILE)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    nw = 1 if _is_cuda(device) else max(1, int(workers))
    with _backend(device).kernels():
        engine = _Engine(real, fake, k, distance, chunk, device, nw)
        try:
            return engine.run()
        finally:
            engine.close()


def per_class_prdc(
    real_feats: np.ndarray,
    real_labels: np.ndarray,
    fake_feats: np.ndarray,
    fake_labels: np.ndarray,
    nearest_k: int = 5,
    distance: str = "euclidean",
    **engine_kwargs: object,
) -> list[dict[str, float | int]]:
    """PRDC of each class's fake features against the same class's real features.

    Shows *which* classes collapse (high density, low coverage) or drift (both low). A class
    with at most ``nearest_k`` samples on either side has no k-th neighbour: its metrics are
    NaN and ``skipped`` is 1, rather than the class silently vanishing from the table.
    """
    real_labels = np.asarray(real_labels)
    fake_labels = np.asarray(fake_labels)
    rows: list[dict[str, float | int]] = []
    for label in np.union1d(real_labels, fake_labels):
        r = real_feats[real_labels == label]
        f = fake_feats[fake_labels == label]
        row: dict[str, float | int] = {"label": int(label), "n_real": len(r), "n_fake": len(f)}
        if min(len(r), len(f)) <= nearest_k:
            row.update(dict.fromkeys(("precision", "recall", "density", "coverage"), math.nan))
            row["skipped"] = 1
        else:
            row.update(compute_prdc(r, f, nearest_k, distance=distance, **engine_kwargs))
            row["skipped"] = 0
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# set-up helpers


def _is_cuda(device: Any) -> bool:
    return device is not None and str(device).startswith("cuda")


def _as_features(x: Any, name: str) -> np.ndarray:
    """A 2-D float32/float64 array, converted the way sklearn's ``check_pairwise_arrays`` does."""
    if type(x).__module__.startswith("torch"):  # a tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, dim), got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


class _NumpyOps:
    """The engine's array operations on host arrays (NumPy; the CPU backend).

    Arithmetic, comparisons and indexing are written as operators in the engine, which both
    backends share; what differs in name or semantics between NumPy and torch lives here.
    """

    f32, f64, i64, boolean = np.float32, np.float64, np.int64, np.bool_
    host = True

    def kernels(self) -> contextlib.AbstractContextManager[None]:
        """One thread per BLAS call: the engine runs blocks in parallel instead.

        Per-block work is small and cache-resident: BLAS fan-out inside each op gains little
        and, on a shared machine, costs whole scheduler slices per op (measured 3x slower
        overall). Independent blocks on independent threads never wait for each other.
        """
        return threadpool_limits(limits=1, user_api="blas")

    def full(self, shape: Any, value: float, dtype: Any) -> Array:
        return np.full(shape, value, dtype=dtype)

    def empty(self, size: int, dtype: Any) -> Array:
        return np.empty(size, dtype=dtype)

    def from_host(self, a: np.ndarray) -> Array:
        return a

    def to_host(self, x: Array) -> np.ndarray:
        return x

    def cast(self, x: Array, dtype: Any) -> Array:
        return x.astype(dtype)

    def copy(self, x: Array) -> Array:
        return x.copy()

    def arange(self, n: int) -> Array:
        return np.arange(n)

    def smallest(self, m: Array, k: int) -> tuple[Array, Array]:
        """Each row's ``k`` smallest values, ascending, and their column indices."""
        if k <= 0:
            return m[:, :0].copy(), np.zeros((m.shape[0], 0), dtype=np.int64)
        idx = np.argpartition(m, k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(m, idx, 1)
        order = np.argsort(vals, axis=1, kind="stable")
        return np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)

    def sort_rows(self, m: Array) -> Array:
        return np.sort(m, axis=1)

    def gather(self, m: Array, idx: Array) -> Array:
        """``m[i, idx[i, j]]`` for every row ``i``."""
        return np.take_along_axis(m, idx, 1)

    def nonzero(self, mask: Array) -> tuple[Array, ...]:
        return np.nonzero(mask)

    def argsort_stable(self, x: Array) -> Array:
        return np.argsort(x, kind="stable")

    def runs(self, sorted_x: Array) -> tuple[Array, Array]:
        """The distinct values of a sorted 1-D array and how often each occurs."""
        return np.unique(sorted_x, return_counts=True)

    def repeat(self, x: Array, counts: Array) -> Array:
        return np.repeat(x, counts)

    def cumsum(self, x: Array) -> Array:
        return np.cumsum(x)

    def clamp(self, x: Array, lo: float | None = None, hi: float | None = None) -> Array:
        return np.clip(x, lo, hi)

    def where(self, cond: Array, a: Any, b: Array) -> Array:
        return np.where(cond, a, b)

    def next_up(self, f: Array) -> Array:
        """The next float32 above each float32 value."""
        return np.nextafter(f, np.float32(np.inf))

    def cat(self, parts: list[Array]) -> Array:
        return np.concatenate(parts)

    def bincount(self, x: Array, n: int) -> Array:
        return np.bincount(x, minlength=n)

    def fill_diagonal(self, m: Array, value: float) -> None:
        np.fill_diagonal(m, value)

    def mm(self, a: Array, b: Array, out: Array) -> None:
        """``out = a @ b.T``."""
        np.matmul(a, b.T, out=out)

    def mul(self, a: Array, value: float, out: Array | None) -> Array:
        return np.multiply(a, value, out=out)


class _TorchOps(_NumpyOps):
    """The same operations as torch tensors on ``device`` (the GPU backend)."""

    host = False

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.dev = torch.device(device)
        self.f32, self.f64, self.i64, self.boolean = (
            torch.float32,
            torch.float64,
            torch.long,
            torch.bool,
        )

    @contextlib.contextmanager
    def kernels(self) -> Iterator[None]:
        """True float32 GEMMs (no TF32/bf16 shortcuts: the error bounds assume them), no
        autograd, and on the CPU one thread per op (see :meth:`_NumpyOps.kernels`)."""
        torch = self.torch
        old_precision = torch.get_float32_matmul_precision()
        old_tf32 = torch.backends.cuda.matmul.allow_tf32
        old_threads = torch.get_num_threads()
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        cpu = self.dev.type == "cpu"
        if cpu:
            torch.set_num_threads(1)
        try:
            with torch.no_grad(), super().kernels() if cpu else contextlib.nullcontext():
                yield
        finally:
            torch.set_num_threads(old_threads)
            torch.backends.cuda.matmul.allow_tf32 = old_tf32
            torch.set_float32_matmul_precision(old_precision)

    def full(self, shape: Any, value: float, dtype: Any) -> Array:
        return self.torch.full(shape, value, dtype=dtype, device=self.dev)

    def empty(self, size: int, dtype: Any) -> Array:
        return self.torch.empty(size, dtype=dtype, device=self.dev)

    def from_host(self, a: np.ndarray) -> Array:
        return self.torch.from_numpy(a).to(self.dev)

    def to_host(self, x: Array) -> np.ndarray:
        return x.cpu().numpy()

    def cast(self, x: Array, dtype: Any) -> Array:
        return x.to(dtype)

    def copy(self, x: Array) -> Array:
        return x.clone()

    def arange(self, n: int) -> Array:
        return self.torch.arange(n, device=self.dev)

    def smallest(self, m: Array, k: int) -> tuple[Array, Array]:
        top = m.topk(k, dim=1, largest=False, sorted=True)
        return top.values, top.indices

    def sort_rows(self, m: Array) -> Array:
        return m.sort(dim=1).values

    def gather(self, m: Array, idx: Array) -> Array:
        return m.gather(1, idx)

    def nonzero(self, mask: Array) -> tuple[Array, ...]:
        return mask.nonzero(as_tuple=True)

    def argsort_stable(self, x: Array) -> Array:
        return self.torch.argsort(x, stable=True)

    def runs(self, sorted_x: Array) -> tuple[Array, Array]:
        return self.torch.unique_consecutive(sorted_x, return_counts=True)

    def repeat(self, x: Array, counts: Array) -> Array:
        return self.torch.repeat_interleave(x, counts)

    def cumsum(self, x: Array) -> Array:
        return self.torch.cumsum(x, 0)

    def clamp(self, x: Array, lo: float | None = None, hi: float | None = None) -> Array:
        return x.clamp(min=lo, max=hi)

    def where(self, cond: Array, a: Any, b: Array) -> Array:
        return self.torch.where(cond, a, b)

    def next_up(self, f: Array) -> Array:
        return self.torch.nextafter(f, self.torch.full_like(f, math.inf))

    def cat(self, parts: list[Array]) -> Array:
        return self.torch.cat(parts)

    def bincount(self, x: Array, n: int) -> Array:
        return self.torch.bincount(x, minlength=n)

    def fill_diagonal(self, m: Array, value: float) -> None:
        m.fill_diagonal_(value)

    def mm(self, a: Array, b: Array, out: Array) -> None:
        self.torch.mm(a, b.T, out=out)

    def mul(self, a: Array, value: float, out: Array | None) -> Array:
        return self.torch.mul(a, value, out=out)


def _backend(device: Any, backend: str | None = None) -> _NumpyOps:
    """NumPy for the CPU (``None``/``"cpu"``), torch for any other device; ``backend``
    (``"numpy"``/``"torch"``) overrides (tests run the torch backend on the CPU)."""
    if backend is None:
        backend = "numpy" if device is None or str(device) == "cpu" else "torch"
    if backend == "numpy":
        return _NumpyOps()
    return _TorchOps("cpu" if device is None else device)


def _splits(n: int, chunk: int) -> list[tuple[int, int]]:
    """[start, stop) blocks of about ``chunk`` rows; all but the last a multiple of 16."""
    nb = max(1, math.ceil(n / chunk))
    step = math.ceil(n / nb / _TILE) * _TILE
    edges = [*range(0, n, step), n]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


@dataclass
class _Side:
    """One point set: original features for the exact pass, float32 rows for the fast pass.

    ``rows`` is ``[x~, |x~|^2, 1, 0...]``; its column form ``[-2 x~, 1, |x~|^2, 0...]`` is
    built per block (:meth:`cols`, ~1% of a GEMM, saving a copy of the set), so one GEMM
    ``rows @ cols.T`` yields squared distances directly (no extra pass over the block).
    For cosine, x~ is the unit vector and both norm slots hold 1, giving ``2 - 2 cos``.
    """

    xp: _NumpyOps
    orig: np.ndarray  # (n, d) float32 or float64, as prdc/sklearn would see it
    rows: Array  # (n, dp) float32, on the backend's device
    fast_norm: Array  # (n,) float64: |x~| (scaled units), for error bounds
    orig_norm: Array  # (n,) float64: |x| of the original features
    sqnorm: Array  # (n,) float64: sklearn's row_norms(x, squared=True)

    orig_norm_np: np.ndarray  # the same two, in host memory for the exact pass
    sqnorm_np: np.ndarray

    def cols(self, start: int, stop: int, out: Array | None = None) -> Array:
        """Column form ``[-2 x~, 1, |x~|^2, 0...]`` of rows ``start:stop`` (exact: x -2)."""
        blk = self.rows[start:stop]
        d = self.orig.shape[1]
        out = self.xp.mul(blk, -2.0, out)
        out[:, d] = 1.0
        out[:, d + 1] = blk[:, d]
        return out

    @property
    def n(self) -> int:
        return self.orig.shape[0]

    @property
    def is32(self) -> bool:
        return self.orig.dtype == np.float32


def _make_side(x: np.ndarray, center: np.ndarray | None, cosine: bool, xp: _NumpyOps) -> _Side:
    """One pass over ``x``: float32 fast rows (unscaled), norms for bounds and exact pass."""
    n, d = x.shape
    dp = d + 2 + (-(d + 2)) % 8  # pad to a multiple of 8 floats for the GEMM kernels
    rows = np.zeros((n, dp), dtype=np.float32)
    fast_norm = np.empty(n)
    orig_norm = np.empty(n)
    sqnorm = np.empty(n)
    for a, b in _splits(n, 1024):
        blk = x[a:b].astype(np.float64)
        sqnorm[a:b] = np.einsum("ij,ij->i", blk, blk)  # sklearn.utils.extmath.row_norms
        orig_norm[a:b] = np.sqrt(sqnorm[a:b])
        if cosine:
            norms = orig_norm[a:b].copy()
            norms[norms == 0] = 1.0
            blk /= norms[:, None]
        else:
            blk -= center
        rows[a:b, :d] = blk
        f64 = rows[a:b, :d].astype(np.float64)
        fast_norm[a:b] = np.sqrt(np.einsum("ij,ij->i", f64, f64))
    if not np.isfinite(fast_norm).all():
        raise ValueError("features are too large for float32 (|x| > 3e38)")
    return _Side(xp, x, rows, fast_norm, orig_norm, sqnorm, orig_norm, sqnorm)


def _finish_side(side: _Side, scale: float, cosine: bool) -> None:
    """Apply the power-of-two scale (exact in float32), fill ``[x~, |x~|^2, 1, 0...]`` and
    move the set to the backend's device."""
    d = side.orig.shape[1]
    rows = side.rows
    if scale != 1.0:
        rows[:, :d] *= scale
        side.fast_norm = side.fast_norm * scale
    rows[:, d] = 1.0 if cosine else (side.fast_norm**2).astype(np.float32)
    rows[:, d + 1] = 1.0
    xp = side.xp
    side.rows = xp.from_host(rows)
    side.fast_norm = xp.from_host(side.fast_norm)
    side.orig_norm = xp.from_host(side.orig_norm_np)
    side.sqnorm = xp.from_host(side.sqnorm_np)


# --------------------------------------------------------------------------------------------
# the engine


class _CrossThresholds(NamedTuple):
    """Per-point thresholds of the cross pass: real radii ``th_r`` with their error ``band_r``
    (and float32 copies rounded up), fake radii's window ``[lo_f, hi_f]`` (``hi_f32``: widened
    for float32 candidate search)."""

    th_r: Array
    band_r: Array
    band_r32: Array
    th_r32: Array
    lo_f: Array
    hi_f: Array
    hi_f32: Array


class _Engine:
    def __init__(
        self,
        real: np.ndarray,
        fake: np.ndarray,
        k: int,
        metric: str,
        chunk: int,
        device: Any = None,
        workers: int = 1,
        backend: str | None = None,
    ) -> None:
        self.k = k
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self.cosine = metric == "cosine"
        self.chunk = chunk
        self.xp = xp = _backend(device, backend)
        d = real.shape[1]
        # Distances are translation invariant: centring shrinks |x|, hence the float32 error
        # bound, which scales with (|x| + |y|)^2. A power-of-two scale (to |x~| <= 1) is exact
        # and keeps float32 far from overflow and underflow.
        center = None if self.cosine else real.mean(axis=0, dtype=np.float64)
        self.real, self.fake = self._run(
            [
                lambda: _make_side(real, center, self.cosine, xp),
                lambda: _make_side(fake, center, self.cosine, xp),
            ]
        )
        peak = max(float(self.real.fast_norm.max()), float(self.fake.fast_norm.max()))
        scale = 1.0
        if not self.cosine and peak > 0:
            scale = 2.0 ** -math.ceil(math.log2(peak))
        self.scale2 = scale * scale  # squared distances scale by this in the fast pass

        # Points keep their given order for the neighbour search: each block is then a fair
        # sample of its set, so the thresholds from the diagonal blocks are already tight.
        # (Sorting by norm instead made high-norm blocks flag nearly every pair.)
        _finish_side(self.real, scale, self.cosine)
        _finish_side(self.fake, scale, self.cosine)
        dp = self.real.rows.shape[1]
        self.rows_dim = dp
        # gamma_n for an n-term float32 dot product, with slack for the conversions, the
        # folded threshold and the one extra float32 subtraction applied to a block.
        m = dp + 24
        self.c32 = 1.05 * m * _U32 / (1.0 - m * _U32)
        self.c64 = 1.05 * (d + 8) * _U64
        self._local = threading.local()  # one block buffer per worker thread
        #: Work counters (for benchmarks and tests): pairs recomputed exactly, fallback rows.
        self.stats = {"exact_pairs": 0, "fallback_rows": 0}
        self._stats_lock = threading.Lock()

    # ---- primitives ----

    def _scratch(self, name: str, rows: int, cols: int) -> Array:
        """A per-thread reusable (rows, cols) float32 array.

        Block-sized temporaries allocated afresh in every task fragment the heap across the
        worker threads' malloc arenas (measured: +0.4 GB RSS at 20k points); reusing one
        buffer per thread keeps the footprint flat.
        """
        bufs = self._local.__dict__.setdefault("scratch", {})
        buf = bufs.get(name)
        if buf is None or buf.shape[0] < rows * cols:
            size = max(rows * cols, (self.chunk + _TILE) * cols)
            buf = bufs[name] = self.xp.empty(size, self.xp.f32)
        return buf[: rows * cols].reshape(rows, cols)

    def _gemm_out(self, r: int, c: int) -> Array:
        """This thread's (r, c) block buffer."""
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] < r * c:
            size = max(r * c, (self.chunk + _TILE) * self.chunk)
            buf = self._local.buf = self.xp.empty(size, self.xp.f32)
        return buf[: r * c].reshape(r, c)

    def _gemm(self, a: Array, b: Array) -> Array:
        """``a @ b.T`` into the block buffer."""
        out = self._gemm_out(a.shape[0], b.shape[0])
        self.xp.mm(a, b, out)
        return out

    def _self_distances(self, s: _Side, a0: int, a1: int) -> Array:
        """Fast squared distances among rows ``a0:a1`` of one set, into the block buffer.

        On the CPU, ``X @ X.T`` of one array is a symmetric rank-k update (BLAS ``syrk``, half
        the flops of a GEMM); ``-2 G + |x|^2 + |y|^2`` then costs three cheap passes. Each of
        those roundings is bounded by ``u (|x| + |y|)^2``, inside the slack of ``c32``.
        """
        if not self.xp.host:
            return self._gemm(
                s.rows[a0:a1], s.cols(a0, a1, self._scratch("cols", a1 - a0, self.rows_dim))
            )
        d = s.orig.shape[1]
        x = s.rows[a0:a1, :d]
        out = self._gemm_out(a1 - a0, a1 - a0)
        np.matmul(x, x.T, out=out)  # NumPy sees the transposed pair and calls syrk
        sq = s.rows[a0:a1, d]
        out *= -2.0
        out += sq[:, None]
        out += sq[None, :]
        return out

    def _below(
        self,
        m: Array,
        row_thr: Array | None = None,
        col_thr: Array | None = None,
        row_offset: Array | None = None,
    ) -> tuple[Array, Array]:
        """Positions ``(r, c)`` where ``m[r, c] (+ row_offset[r]) < thr`` per row or column.

        One comparison pass and one scan of the mask: a block's hits are a fraction of a
        percent of it, so this costs ~3 ms per 2000 x 2000 block on one core. On the CPU the
        compare and ``flatnonzero`` (4x faster than a 2-D ``nonzero``) write into per-thread
        buffers, so no block-sized temporaries reach the heap.
        """
        t = row_thr[:, None] if row_thr is not None else col_thr[None, :]
        if not self.xp.host:
            if row_offset is not None:
                m = m + row_offset[:, None]
            return self.xp.nonzero(m < t)
        a = m
        if row_offset is not None:
            a = np.add(a, row_offset[:, None], out=self._scratch("sum", *a.shape))
        buf = getattr(self._local, "mask", None)
        if buf is None or buf.size < a.size:
            buf = self._local.mask = np.empty(max(a.size, self.chunk**2), dtype=bool)
        mask = buf[: a.size].reshape(a.shape)
        np.less(a, t, out=mask)
        return np.divmod(np.flatnonzero(mask), a.shape[1])

    def _up32(self, x: Array) -> Array:
        """The smallest float32 >= each float64 value: a filter ``v32 < up32(x)`` keeps every
        ``v < x``, so candidates found in float32 lose nothing before the float64 check."""
        xp = self.xp
        f = xp.cast(x, xp.f32)
        return xp.where(xp.cast(f, xp.f64) < x, xp.next_up(f), f)

    def _band(
        self,
        norm_x: Array,
        onorm_x: Array,
        other: _Side,
        theta: Array,
        extra_theta: float = 0.0,
    ) -> Array:
        """Error bound (fast units) between a float32 block value and sklearn's exact value.

        Covers the float32 GEMM (``c32 (|x~| + max|y~|)^2``, plus the folded thresholds), the
        float64 rounding of sklearn's own formula on the raw features, and a 1e-6 relative
        margin for rounding distances and radii to float32 and for squaring radii.
        """
        fmax = float(other.fast_norm.max())
        omax = float(other.orig_norm.max())
        th = self.xp.clamp(theta, 0.0)
        b32 = self.c32 * ((norm_x + fmax) ** 2 + th + extra_theta)
        if self.cosine:  # 1 - x^.y^ of unit vectors in float64, in key units (2 x)
            b64 = self.xp.full(norm_x.shape, 8 * self.c64 + 16 * _U64, self.xp.f64)
        else:
            b64 = self.c64 * self.scale2 * (onorm_x + omax) ** 2
        return b32 + b64 + 1e-6 * th + 2.0**-100

    def _key(self, dist: Array) -> Array:
        """Map an exact distance (float64) to the fast pass's units (float64)."""
        if self.cosine:
            return 2.0 * dist
        return dist * dist * self.scale2

    def _exact(self, x: _Side, ix: Array, y: _Side, iy: Array) -> Array:
        """Distances of pairs (ix[t], iy[t]) exactly as sklearn computes them, as float64."""
        ix_np, iy_np = self.xp.to_host(ix), self.xp.to_host(iy)
        out = np.empty(ix_np.size, dtype=np.float64)
        as32 = x.is32 and y.is32 and not self.cosine
        for a in range(0, ix_np.size, _EXACT_BATCH):
            i = ix_np[a : a + _EXACT_BATCH]
            j = iy_np[a : a + _EXACT_BATCH]
            xi, yj = x.orig[i], y.orig[j]
            if self.cosine:
                nx, ny = x.orig_norm_np[i].copy(), y.orig_norm_np[j].copy()
                nx[nx == 0] = 1.0
                ny[ny == 0] = 1.0
                xh = xi.astype(np.float64) / nx[:, None]
                yh = yj.astype(np.float64) / ny[:, None]
                val = np.clip(-np.einsum("ij,ij->i", xh, yh) + 1.0, 0.0, 2.0)
            else:
                # Products of float32 values are exact in float64, as in sklearn's upcast.
                dot = np.einsum("ij,ij->i", xi, yj, dtype=np.float64)
                e = np.maximum((-2.0 * dot + x.sqnorm_np[i]) + y.sqnorm_np[j], 0.0)
                val = np.sqrt(e.astype(np.float32)).astype(np.float64) if as32 else np.sqrt(e)
            if x is y:
                val[i == j] = 0.0  # sklearn zeroes the diagonal of a self-distance matrix
            out[a : a + _EXACT_BATCH] = val
        with self._stats_lock:
            self.stats["exact_pairs"] += int(ix_np.size)
        return self.xp.from_host(out)

    def _run(self, tasks: list[Callable[[], Any]]) -> list[Any]:
        """Run zero-argument tasks on the worker threads, started in list order (FIFO).

        One pool serves the engine's whole life: fresh threads per phase would each get
        their own malloc arena and BLAS buffers, which showed up as ~0.5 GB of extra RSS.
        """
        if self.workers == 1 or len(tasks) <= 1:
            return [t() for t in tasks]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="prdc")
        return list(self._pool.map(lambda t: t(), tasks))

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ---- radii: k-th neighbour distance within one set ----

    def _neighbour_tasks(
        self, s: _Side
    ) -> tuple[Array, Array, list[Callable[[], None]], list[Callable[[], None]]]:
        """Tasks that fill each point's kk smallest fast distances within its own set.

        Returns the buffers (values, indices) and two task lists: diagonal blocks, to be
        started first, and off-diagonal blocks, each of which waits for its two diagonals.
        """
        xp, n, k = self.xp, s.n, self.k
        kk = min(k + _EXTRA, n - 1)
        bv = xp.full((n, kk), math.inf, xp.f32)
        bi = xp.full((n, kk), -1, xp.i64)
        blocks = _splits(n, self.chunk)
        locks = [threading.Lock() for _ in blocks]
        ready = [threading.Event() for _ in blocks]

        # Diagonal blocks first: every row then holds kk neighbours and a finite threshold.
        def diagonal(a0: int, a1: int) -> None:
            m = self._self_distances(s, a0, a1)
            xp.fill_diagonal(m, math.inf)
            kc = min(kk, a1 - a0 - 1)
            values, indices = xp.smallest(m, kc)
            bv[a0:a1, :kc] = values
            bi[a0:a1, :kc] = indices + a0
            ready[blocks.index((a0, a1))].set()

        # Off-diagonal blocks once each (symmetry): rows of a see columns b and vice versa.
        # Only values below a row's current kk-th smallest can enter it (all float32, so the
        # comparisons are exact). A threshold read before another thread lowers it is merely
        # looser (still correct); the merges themselves hold the lock of the rows they rewrite.
        def off_diagonal(ai: int, bj: int) -> None:
            (a0, a1), (b0, b1) = blocks[ai], blocks[bj]
            ready[ai].wait()
            ready[bj].wait()
            m = self._gemm(
                s.rows[a0:a1], s.cols(b0, b1, self._scratch("cols", b1 - b0, self.rows_dim))
            )
            r, c = self._below(m, row_thr=xp.copy(bv[a0:a1, kk - 1]))
            if len(r):
                with locks[ai]:
                    self._merge(bv, bi, r + a0, c + b0, m[r, c])
            r, c = self._below(m, col_thr=xp.copy(bv[b0:b1, kk - 1]))
            if len(r):
                with locks[bj]:
                    self._merge(bv, bi, c + b0, r + a0, m[r, c])

        diag = [lambda a0=a0, a1=a1: diagonal(a0, a1) for a0, a1 in blocks]
        off = [
            lambda ai=ai, bj=bj: off_diagonal(ai, bj)
            for ai in range(len(blocks))
            for bj in range(ai + 1, len(blocks))
        ]
        return bv, bi, diag, off

    def _merge(self, bv: Array, bi: Array, row: Array, col: Array, val: Array) -> None:
        """Merge candidate (row, col, val) triples into each row's kk smallest values."""
        if len(row) == 0:
            return
        xp = self.xp
        kk = bv.shape[1]
        order = xp.argsort_stable(row)
        row, col, val = row[order], col[order], val[order]
        uniq, counts = xp.runs(row)
        starts = xp.cumsum(counts) - counts
        slot = xp.arange(len(row)) - xp.repeat(starts, counts)
        pos = xp.repeat(xp.arange(len(uniq)), counts)
        width = kk + int(counts.max())
        pv = xp.full((len(uniq), width), math.inf, xp.f32)
        pi = xp.full((len(uniq), width), -1, xp.i64)
        pv[:, :kk] = bv[uniq]
        pi[:, :kk] = bi[uniq]
        pv[pos, kk + slot] = val
        pi[pos, kk + slot] = col
        values, indices = xp.smallest(pv, kk)
        bv[uniq] = values
        bi[uniq] = xp.gather(pi, indices)

    def _exact_radii(self, s: _Side, bv: Array, bi: Array) -> Array:
        """Turn each row's kept approximate neighbours into its exact k-th neighbour distance.

        With ``t`` the approximate k-th value and ``band`` the error bound, the exact k-th
        value lies in ``[t - band, t + band]``; neighbours whose approximate value is below
        ``t - 2 band`` are surely closer, and only the few inside the window
        ``[t - 2 band, t + 2 band]`` need an exact recomputation.
        """
        xp, n, k = self.xp, s.n, self.k
        kk = bv.shape[1]
        bv64 = xp.cast(bv, xp.f64)
        t = bv64[:, k - 1]
        band = self._band(s.fast_norm, s.orig_norm, s, t)
        lo, hi = t - 2 * band, t + 2 * band
        below = (bv64 < lo[:, None]).sum(1)
        window = (bv64 >= lo[:, None]) & (bv64 <= hi[:, None])
        # Rows whose window may reach past the kept neighbours get a wider search.
        fallback = (bv64[:, kk - 1] <= hi) & (kk < n - 1)
        rows, slots = xp.nonzero(window & ~fallback[:, None])
        exact = xp.full((n, kk), math.inf, xp.f64)
        exact[rows, slots] = self._exact(s, rows, s, bi[rows, slots])
        rank = xp.clamp(k - 1 - below, 0, kk - 1)
        radii = xp.gather(xp.sort_rows(exact), rank[:, None])[:, 0]
        fb = xp.nonzero(fallback)[0]
        if len(fb):
            self.stats["fallback_rows"] += len(fb)
            radii[fb] = self._fallback_radii(s, fb, lo[fb], hi[fb])
        return radii

    def _fallback_radii(self, s: _Side, rows: Array, lo: Array, hi: Array) -> Array:
        """Exact k-th neighbour of ``rows`` from a fresh scan of all their fast distances."""
        xp = self.xp
        below = xp.full((len(rows),), 0, xp.i64)
        found_r, found_c = [], []
        for b0, b1 in _splits(s.n, self.chunk):
            for a in range(0, len(rows), self.chunk):
                rr = rows[a : a + self.chunk]
                m = xp.cast(self._gemm(s.rows[rr], s.cols(b0, b1)), xp.f64)
                own = (rr >= b0) & (rr < b1)
                m[xp.nonzero(own)[0], rr[own] - b0] = math.inf  # drop self
                lo_a, hi_a = lo[a : a + self.chunk, None], hi[a : a + self.chunk, None]
                below[a : a + self.chunk] += (m < lo_a).sum(1)
                r, c = xp.nonzero((m >= lo_a) & (m <= hi_a))
                found_r.append(r + a)
                found_c.append(c + b0)
        fr, fc = xp.cat(found_r), xp.cat(found_c)
        dist = self._exact(s, rows[fr], s, fc)
        out = xp.full((len(rows),), math.nan, xp.f64)
        for t in range(len(rows)):
            vals = xp.sort_rows(dist[fr == t][None, :])[0]
            out[t] = vals[self.k - 1 - int(below[t])]
        return out

    # ---- cross pass ----

    def _radii(self) -> tuple[Array, Array]:
        """Exact k-th neighbour distances of every real and every fake point."""
        real, fake = self.real, self.fake
        # Both sets' neighbour searches share one queue (all diagonals first), so no worker
        # idles at a phase boundary; then both sets' exact radii.
        bv_r, bi_r, diag_r, off_r = self._neighbour_tasks(real)
        bv_f, bi_f, diag_f, off_f = self._neighbour_tasks(fake)
        self._run(diag_r + diag_f + off_r + off_f)
        r_real, r_fake = self._run(
            [
                lambda: self._exact_radii(real, bv_r, bi_r),
                lambda: self._exact_radii(fake, bv_f, bi_f),
            ]
        )
        return r_real, r_fake

    def _cross_thresholds(self, r_real: Array, r_fake: Array) -> _CrossThresholds:
        """The cross pass's thresholds (fast units) and their error bands, from the radii."""
        real, fake = self.real, self.fake
        th_r = self._key(r_real)  # thresholds in fast units, float64
        th_f = self._key(r_fake)
        band_r = self._band(real.fast_norm, real.orig_norm, fake, th_r, float(th_f.max()))
        band_f = self._band(fake.fast_norm, fake.orig_norm, real, th_f, float(th_r.max()))
        lo_f, hi_f = th_f - band_f, th_f + band_f
        # Recall candidates are found from float32 sums ``d^2 - theta_i + theta_i``: widen
        # their thresholds by far more than those two roundings can move a value.
        slack = 8 * _U32 * (float(abs(th_r).max()) + float(abs(hi_f).max())) + 2.0**-100
        hi_f32 = self._up32(hi_f + slack)
        band_r32 = self._up32(band_r)
        th_r32 = self.xp.cast(th_r, self.xp.f32)
        return _CrossThresholds(th_r, band_r, band_r32, th_r32, lo_f, hi_f, hi_f32)

    def run(self) -> dict[str, float]:
        xp, real, fake = self.xp, self.real, self.fake
        r_real, r_fake = self._radii()
        th_r, band_r, band_r32, th_r32, lo_f, hi_f, hi_f32 = self._cross_thresholds(r_real, r_fake)
        covered = xp.full((real.n,), False, xp.boolean)
        recalled = xp.full((real.n,), False, xp.boolean)
        d = real.orig.shape[1]

        # One task per (real block, fake block): covered/recalled only ever turn True (safe to
        # share), and each task returns the fake indices of its density hits.
        def cross(a0: int, a1: int, b0: int, b1: int) -> Array:
            # Fold "- theta_i" into the GEMM: block = d^2(i, j) - theta_i (fast units).
            rows = self._scratch("rows", a1 - a0, self.rows_dim)
            rows[:] = real.rows[a0:a1]
            rows[:, d] = xp.cast(xp.cast(rows[:, d], xp.f64) - th_r[a0:a1], xp.f32)
            band_a, th_a = band_r[a0:a1], th_r[a0:a1]
            hits = xp.full((0,), 0, xp.i64)
            m = self._gemm(rows, fake.cols(b0, b1, self._scratch("cols", b1 - b0, self.rows_dim)))
            # density, coverage, precision: d^2 - theta_i < band_i may be a hit.
            rr, fj = self._below(m, row_thr=band_r32[a0:a1])
            if len(rr):
                v = xp.cast(m[rr, fj], xp.f64)
                keep = v < band_a[rr]
                ri, fj, v = rr[keep], fj[keep], v[keep]
                hit = v < -band_a[ri]
                unsure = ~hit
                if unsure.any():
                    ui, uj = ri[unsure] + a0, fj[unsure] + b0
                    hit[unsure] = self._exact(real, ui, fake, uj) < r_real[ui]
                covered[ri[hit] + a0] = True
                hits = fj[hit] + b0
            # recall: d^2 < theta_fake_j may be a hit for a real not yet recalled (rows
            # already recalled get an infinite offset and drop out of the search).
            off = xp.where(recalled[a0:a1], math.inf, th_r32[a0:a1])
            rr, fj = self._below(m, col_thr=hi_f32[b0:b1], row_offset=off)
            if len(rr):
                todo = ~recalled[rr + a0]
                rr, fj = rr[todo], fj[todo]
                v = xp.cast(m[rr, fj], xp.f64) + th_a[rr]
                keep = v <= hi_f[fj + b0]
                ri, fj, v = rr[keep] + a0, fj[keep] + b0, v[keep]
                hit = v < lo_f[fj]
                unsure = ~hit
                if unsure.any():
                    ui, uj = ri[unsure], fj[unsure]
                    hit[unsure] = self._exact(real, ui, fake, uj) < r_fake[uj]
                recalled[ri[hit]] = True
            return hits

        tasks = [
            lambda a0=a0, a1=a1, b0=b0, b1=b1: cross(a0, a1, b0, b1)
            for a0, a1 in _splits(real.n, self.chunk)
            for b0, b1 in _splits(fake.n, self.chunk)
        ]
        hits = xp.cat(list(self._run(tasks)))
        counts = xp.to_host(xp.bincount(hits, fake.n))
        precision = (counts > 0).mean()
        recall = xp.to_host(recalled).mean()
        density = (1.0 / float(self.k)) * counts.mean()
        coverage = xp.to_host(covered).mean()
        return {
            "precision": float(precision),
            "recall": float(recall),
            "density": float(density),
            "coverage": float(coverage),
        }
