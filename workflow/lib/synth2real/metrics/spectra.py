"""Radially averaged amplitude spectra of datasets and their power-law slopes.

Natural images have an amplitude spectrum close to ``A(f) ~ f^-alpha`` (alpha near 1), and
diffusion models are known to get the high frequencies wrong. The paper probes this with
low/high-pass classifiers; these functions show it directly: one mean spectrum per dataset,
its fitted slope, and a log-log figure of every dataset beside the real data.

Frequencies are radial and normalised to Nyquist (1.0 = 0.5 cycles/pixel), so datasets of
different resolutions share one axis; DC is always excluded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from synth2real.io import atomic_output
from synth2real.shards import decode_image, pixel_max, read_shard

__all__ = [
    "amplitude_spectrum",
    "dataset_spectrum",
    "fit_power_law",
    "plot_spectra",
    "to_gray",
]

#: ITU-R BT.601 luma weights, as PIL's "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def to_gray(image: np.ndarray) -> np.ndarray:
    """An (H, W) float64 luminance image from (H, W) or (H, W, 3) input of any dtype.

    Amplitudes are in 8-bit grey levels: uint16 pixels (16-bit probe views) are rescaled to
    the 0-255 scale, so a 16-bit and an 8-bit copy of an image have the same spectrum.
    """
    img = np.asarray(image, dtype=np.float64)
    if np.asarray(image).dtype == np.uint16:
        img = img * (pixel_max(np.uint8) / pixel_max(np.uint16))
    if img.ndim == 3:
        img = img[..., :3] @ _LUMA
    if img.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    return img


@lru_cache(maxsize=16)
def _radial_bins(shape: tuple[int, int], n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every FFT coefficient (-1 outside (0, Nyquist]) and the bin centres."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2) / 0.5  # 1.0 = Nyquist
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.digitize(radius, edges[1:], right=True)  # bin i holds (edges[i], edges[i+1]]
    idx[(radius <= 0) | (radius > 1.0)] = -1
    return idx.ravel(), 0.5 * (edges[:-1] + edges[1:])


def amplitude_spectrum(
    image: np.ndarray, n_bins: int, window: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged ``|FFT|`` of an image's luminance: (frequencies, amplitudes).

    ``window="hann"`` tapers the borders first, which removes the cross-shaped leakage a
    non-periodic photo adds to the spectrum (at the price of slight smoothing). Bins that
    no coefficient falls into (possible for tiny images) are NaN.
    """
    gray = to_gray(image)
    gray = gray - gray.mean()
    if window == "hann":
        gray = gray * np.outer(np.hanning(gray.shape[0]), np.hanning(gray.shape[1]))
    elif window is not None:
        raise ValueError(f"unknown window {window!r} (use None or 'hann')")
    amp = np.abs(np.fft.fft2(gray)).ravel() / gray.size
    idx, centres = _radial_bins(gray.shape, n_bins)
    keep = idx >= 0
    sums = np.bincount(idx[keep], weights=amp[keep], minlength=n_bins)
    counts = np.bincount(idx[keep], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return centres.copy(), sums / counts


def dataset_spectrum(
    images: Iterable[np.ndarray] | None = None,
    shard_paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    n_bins: int,
    max_images: int | None,
    window: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean radial amplitude spectrum over a dataset's images (given directly or as shards).

    Images are streamed one shard at a time; ``max_images`` caps the count (the first ones,
    in shard order, so the result is deterministic).
    """
    if (images is None) == (shard_paths is None):
        raise ValueError("give exactly one of images or shard_paths")
    stream = images if images is not None else _shard_images(shard_paths)
    total, n = None, 0
    freqs = None
    for image in stream:
        freqs, amps = amplitude_spectrum(image, n_bins, window)
        total = amps if total is None else total + amps
        n += 1
        if max_images is not None and n >= max_images:
            break
    if total is None:
        raise ValueError("no images")
    return freqs, total / n


def _shard_images(paths: Sequence[str | os.PathLike[str]]) -> Iterable[np.ndarray]:
    for path in paths:
        for data in read_shard(path, ["image"]).column("image").to_pylist():
            yield decode_image(data)


def fit_power_law(freqs: np.ndarray, amps: np.ndarray, band: tuple[float, float]) -> float:
    """Slope ``alpha`` of ``amps ~ freqs^-alpha`` by least squares in log-log space.

    Only bins with ``band[0] <= f <= band[1]`` (Nyquist-normalised) and a positive, finite
    amplitude enter the fit; the lowest bins are few coefficients (noisy) and the highest
    are where demosaicing and JPEG traces live, hence a band (``metrics.spectra.band``).
    """
    f = np.asarray(freqs, dtype=np.float64)
    a = np.asarray(amps, dtype=np.float64)
    use = (f >= band[0]) & (f <= band[1]) & (f > 0) & np.isfinite(a) & (a > 0)
    if use.sum() < 2:
        raise ValueError(f"fewer than 2 usable bins in band {band}")
    slope, _ = np.polyfit(np.log(f[use]), np.log(a[use]), 1)
    return float(-slope)


def plot_spectra(
    spectra: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path_png: str | os.PathLike[str],
    path_pdf: str | os.PathLike[str],
    band: tuple[float, float] | None,
    reference: str = "real",
) -> None:
    """Log-log plot of every dataset's mean spectrum beside the reference (real) one.

    The reference is drawn thick and black so every generator reads as a deviation from it;
    with ``band``, the legend carries each fitted slope and the band is shaded.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    frames = []
    for name, (f, a) in spectra.items():
        label = name
        if band is not None:
            label = f"{name} (alpha={fit_power_law(f, a, band):.2f})"
        frames.append(pd.DataFrame({"frequency": f, "amplitude": a, "dataset": label}))
    data = pd.concat(frames, ignore_index=True)
    data = data[(data["frequency"] > 0) & (data["amplitude"] > 0)]
    is_ref = data["dataset"].str.split(" (", regex=False).str[0] == reference
    others = list(dict.fromkeys(data.loc[~is_ref, "dataset"]))

    sns.set_theme(style="whitegrid")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if others:
        sns.lineplot(
            data=data[~is_ref],
            x="frequency",
            y="amplitude",
            hue="dataset",
            hue_order=others,
            palette=sns.color_palette("husl", len(others)),
            linewidth=1.3,
            ax=ax,
        )
    if is_ref.any():
        ref = data[is_ref]
        sns.lineplot(
            data=ref,
            x="frequency",
            y="amplitude",
            color="black",
            linewidth=2.8,
            label=ref["dataset"].iloc[0],
            ax=ax,
        )
    if band is not None:
        ax.axvspan(*band, color="0.9", zorder=0)
    ax.set(xscale="log", yscale="log", xlabel="spatial frequency (fraction of Nyquist)")
    ax.set_ylabel("mean amplitude |FFT|")
    ax.set_title("Radially averaged amplitude spectra")
    ax.legend(fontsize=7, title=None)
    fig.tight_layout()
    for path in (path_png, path_pdf):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fmt = str(path).rsplit(".", 1)[-1]
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        with atomic_output(path) as fh:  # a killed job leaves no half-drawn figure
            fig.savefig(fh, format=fmt, dpi=150, metadata=metadata)
    plt.close(fig)
