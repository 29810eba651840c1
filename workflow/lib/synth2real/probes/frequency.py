"""Low- and high-pass probes: FFT masks that keep one band of spatial frequencies.

Frequencies are measured as a fraction of the Nyquist frequency f_N (0.5 cycles/pixel), so a
cutoff means the same band at every image size.

The paper's text swaps the two labels ("high-pass retains f <= 0.2 f_N"). We take the
physically meaningful reading, for both masks: **lowpass keeps f <= cutoff * f_N** and
**highpass keeps f >= cutoff * f_N**. The paper's bands are lowpass 0.2, highpass 0.8.

- ``mask="radial"`` (default): |f| is the Euclidean radius, an isotropic band.
- ``mask="official"``: the square box of ``classifier/bp_filter.py`` in the official code,
  i.e. |f| is max(|f_x|, |f_y|), built with its integer box edges, and the result clipped to
  [0, 1] as it clips. Its ``--cutoff c`` keeps ``<= c`` for lowpass and ``>= 1 - c`` for
  highpass: official ``c = 0.2`` is our lowpass ``0.2`` and highpass ``0.8``.

A high-passed image has zero mean and negative values. With the radial mask we store it offset
by mid-grey (0.5), so no band information is clipped away; the official mask clips at 0 as the
official code does. Views are stored with 16 bits per channel by default (``bits``): the
>= 0.8 f_N band is a few grey levels, and 8-bit storage adds a quantisation error of the order
of the band itself (tests/test_frequency.py measures it on the shard round trip).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from synth2real.shards import pixel_max

Band = Literal["lowpass", "highpass"]
Mask = Literal["radial", "official"]
#: Stored bits per channel -> dtype of a probe view's pixels.
STORAGE: dict[int, type[np.integer]] = {8: np.uint8, 16: np.uint16}


def radial_frequency(height: int, width: int) -> np.ndarray:
    """|f| / f_N for every FFT bin of an (height, width) image (unshifted layout)."""
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    return np.sqrt(fx**2 + fy**2) / 0.5


def band_mask(
    height: int, width: int, band: Band, cutoff: float, mask: Mask = "radial"
) -> np.ndarray:
    """Boolean mask of the FFT bins (unshifted layout) that ``band`` keeps."""
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must be a fraction of Nyquist in [0, 1], got {cutoff}")
    if band not in ("lowpass", "highpass"):
        raise ValueError(f"band must be 'lowpass' or 'highpass', got {band!r}")
    if mask == "radial":
        f = radial_frequency(height, width)
        return f <= cutoff if band == "lowpass" else f >= cutoff
    if mask == "official":
        # Centre box in the fftshift-ed spectrum, as classifier/bp_filter.py builds it; there
        # the highpass box edge is ``1 - c`` of its --cutoff c, here it is ``cutoff`` itself.
        cy, cx = height // 2, width // 2
        ry, rx = int(cutoff * cy), int(cutoff * cx)
        box = np.zeros((height, width), dtype=bool)
        box[cy - ry : cy + ry, cx - rx : cx + rx] = True
        keep = box if band == "lowpass" else ~box
        return np.fft.ifftshift(keep)
    raise ValueError(f"mask must be 'radial' or 'official', got {mask!r}")


def filter_float(
    images: np.ndarray, band: Band, cutoff: float, mask: Mask = "radial"
) -> np.ndarray:
    """Filter float images (..., H, W) per channel-plane; returns the real part, unclipped."""
    h, w = images.shape[-2:]
    keep = band_mask(h, w, band, cutoff, mask)
    return np.fft.ifft2(np.fft.fft2(images, axes=(-2, -1)) * keep, axes=(-2, -1)).real


def filter_images(
    images: np.ndarray, band: Band, cutoff: float, mask: Mask = "radial", bits: int = 16
) -> np.ndarray:
    """Filter (N, H, W, 3) uint8/uint16 images into the stored view (see module notes).

    Returns uint8 for ``bits=8``, uint16 for ``bits=16``: [0, 1] mapped to full scale.
    """
    if bits not in STORAGE:
        raise ValueError(f"bits must be one of {sorted(STORAGE)}, got {bits!r}")
    x = images.astype(np.float64).transpose(0, 3, 1, 2) / float(pixel_max(images.dtype))
    y = filter_float(x, band, cutoff, mask)
    if band == "highpass" and mask == "radial":
        y = y + 0.5
    y = np.clip(y, 0.0, 1.0)
    dtype = STORAGE[bits]
    return np.round(y * float(pixel_max(dtype))).astype(dtype).transpose(0, 2, 3, 1)
