"""Radial amplitude spectra: known power laws are recovered, white noise is flat."""

from __future__ import annotations

import numpy as np
import pytest

from synth2real.metrics.spectra import (
    amplitude_spectrum,
    dataset_spectrum,
    fit_power_law,
    plot_spectra,
    to_gray,
)
from synth2real.shards import encode_image, encode_png, write_shard

#: The schema's default fit band (metrics.spectra.band).
BAND = (0.05, 0.8)


def power_law_image(size: int, alpha: float, seed: int) -> np.ndarray:
    """A real image whose Fourier amplitude is exactly f^-alpha, with random phases.

    The phases are those of a real white-noise image, so the spectrum stays Hermitian and
    the inverse FFT is real; the DC term is set to 0.
    """
    rng = np.random.default_rng(seed)
    phase = np.angle(np.fft.fft2(rng.standard_normal((size, size))))
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
    amp = np.zeros_like(f)
    amp[f > 0] = f[f > 0] ** -alpha
    return np.fft.ifft2(amp * np.exp(1j * phase)).real


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_known_power_law_slope_is_recovered(alpha):
    img = power_law_image(128, alpha, seed=int(alpha * 10))
    freqs, amps = amplitude_spectrum(img, n_bins=48)
    assert freqs.shape == amps.shape == (48,)
    assert fit_power_law(freqs, amps, band=(0.05, 0.9)) == pytest.approx(alpha, abs=0.03)


def test_white_noise_has_a_flat_spectrum():
    img = np.random.default_rng(0).standard_normal((128, 128))
    freqs, amps = amplitude_spectrum(img, 64)
    assert abs(fit_power_law(freqs, amps, BAND)) < 0.05
    # and a smoothed image (low-pass) is steeper than the noise it came from
    smooth = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, (1, 1), (0, 1))) / 4
    assert fit_power_law(*amplitude_spectrum(smooth, 64), BAND) > 0.3


def test_spectrum_is_scale_invariant_in_frequency_and_ignores_dc():
    small = power_law_image(64, 1.0, seed=1)
    large = power_law_image(256, 1.0, seed=2)
    f_s, a_s = amplitude_spectrum(small + 100.0, n_bins=16)  # a DC offset changes nothing
    f_l, a_l = amplitude_spectrum(large, n_bins=16)
    np.testing.assert_array_equal(f_s, f_l)
    assert f_s[0] > 0 and f_s[-1] <= 1.0
    assert fit_power_law(f_s, a_s, BAND) == pytest.approx(fit_power_law(f_l, a_l, BAND), abs=0.1)
    np.testing.assert_allclose(
        amplitude_spectrum(small + 100.0, 64)[1], amplitude_spectrum(small, 64)[1], atol=1e-9
    )


def test_gray_conversion_and_hann_window():
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 1] = 100
    np.testing.assert_allclose(to_gray(rgb), 58.7)
    img = power_law_image(128, 1.0, seed=3)
    f, a = amplitude_spectrum(img, 64, window="hann")
    assert fit_power_law(f, a, band=(0.05, 0.9)) == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="window"):
        amplitude_spectrum(img, 64, window="kaiser")


def test_dataset_spectrum_from_shards_is_the_mean_over_images(tmp_path):
    rng = np.random.default_rng(5)
    imgs = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(5)]
    cols = {
        "label": [0] * 5,
        "class_id": ["n0"] * 5,
        "prompt": ["p"] * 5,
        "seed": list(range(5)),
        "source_id": [str(i) for i in range(5)],
    }
    paths = []
    for name, part in (("a", slice(0, 3)), ("b", slice(3, 5))):
        cols_part = {k: v[part] for k, v in cols.items()}
        cols_part["image"] = [encode_png(im) for im in imgs[part]]
        paths.append(write_shard(cols_part, tmp_path / f"{name}.parquet"))
    f, mean = dataset_spectrum(shard_paths=paths, n_bins=12, max_images=None)
    expected = np.mean([amplitude_spectrum(im, 12)[1] for im in imgs], axis=0)
    np.testing.assert_allclose(mean, expected)
    _, first2 = dataset_spectrum(images=imgs, n_bins=12, max_images=2)
    np.testing.assert_allclose(
        first2, np.mean([amplitude_spectrum(im, 12)[1] for im in imgs[:2]], 0)
    )
    with pytest.raises(ValueError):
        dataset_spectrum(n_bins=12, max_images=None)


def test_a_16_bit_shard_has_the_spectrum_of_its_8_bit_copy(tmp_path):
    """Spectra read 16-bit rows (probe views) on the 8-bit grey scale: x * 257 is x."""
    rng = np.random.default_rng(6)
    imgs = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)]
    cols = {"label": [0, 0], "class_id": ["n0"] * 2, "prompt": ["p"] * 2, "seed": [0, 1],
            "source_id": ["0", "1"]}  # fmt: skip
    paths = [
        write_shard({**cols, "image": [encode(im) for im in imgs]}, tmp_path / f"{name}.parquet")
        for name, encode in (
            ("a", encode_png),
            ("b", lambda im: encode_image(im.astype(np.uint16) * 257)),
        )
    ]
    (f8, a8), (f16, a16) = (
        dataset_spectrum(shard_paths=[p], n_bins=8, max_images=None) for p in paths
    )
    np.testing.assert_allclose(a16, a8, rtol=1e-12)
    assert a8.max() > 1  # on the grey-level scale, not [0, 1]


def test_fit_power_law_needs_two_usable_bins():
    with pytest.raises(ValueError, match="usable"):
        fit_power_law(np.array([0.1, 0.2]), np.array([0.0, 1.0]), BAND)


def test_plot_spectra_writes_png_and_pdf(tmp_path):
    spectra = {
        "real": amplitude_spectrum(power_law_image(64, 1.0, seed=7), 64),
        "flux-dev-caption": amplitude_spectrum(power_law_image(64, 1.4, seed=8), 64),
        "sd15-class": amplitude_spectrum(power_law_image(64, 0.8, seed=9), 64),
    }
    png, pdf = tmp_path / "fig" / "spectra.png", tmp_path / "fig" / "spectra.pdf"
    plot_spectra(spectra, png, pdf, BAND)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert png.stat().st_size > 5000
