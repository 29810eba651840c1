"""Low-/high-pass probes keep the band they name, and nothing else."""

import numpy as np
import pytest

from synth2real.probes.frequency import band_mask, filter_float, filter_images, radial_frequency
from synth2real.shards import pixel_max


def sinusoid(size, cycles, amplitude=0.25):
    """A horizontal cosine with ``cycles`` periods across the image, at f = cycles/size."""
    x = np.arange(size)
    return amplitude * np.cos(2 * np.pi * cycles * x / size)[None, :].repeat(size, 0)


@pytest.mark.parametrize("cutoff", [0.2, 0.5])
def test_high_frequency_sinusoid(cutoff):
    size = 64
    # f / f_N = (cycles / size) / 0.5: 24 cycles at 64 px -> 0.75 f_N, above both cutoffs.
    wave = sinusoid(size, 24)
    low = filter_float(wave, "lowpass", cutoff)
    high = filter_float(wave, "highpass", cutoff)
    assert np.abs(low).max() < 1e-9
    np.testing.assert_allclose(high, wave, atol=1e-9)


@pytest.mark.parametrize("cutoff", [0.2, 0.5])
def test_low_frequency_sinusoid(cutoff):
    size = 64
    # 2 cycles at 64 px -> 0.0625 f_N, below both cutoffs.
    wave = sinusoid(size, 2)
    np.testing.assert_allclose(filter_float(wave, "lowpass", cutoff), wave, atol=1e-9)
    assert np.abs(filter_float(wave, "highpass", cutoff)).max() < 1e-9


def test_mixture_is_split_into_its_parts():
    low_wave, high_wave = sinusoid(32, 1), sinusoid(32, 12)
    mix = low_wave + high_wave
    np.testing.assert_allclose(filter_float(mix, "lowpass", 0.3), low_wave, atol=1e-9)
    np.testing.assert_allclose(filter_float(mix, "highpass", 0.3), high_wave, atol=1e-9)


@pytest.mark.parametrize("bits", [8, 16])
def test_stored_views_keep_shape_and_offset_highpass(bits):
    rng = np.random.default_rng(0)
    img = np.full((2, 16, 16, 3), 100, dtype=np.uint8)
    img += rng.integers(0, 3, img.shape, dtype=np.uint8)
    low = filter_images(img, "lowpass", 0.1, bits=bits)
    high = filter_images(img, "highpass", 0.5, bits=bits)
    dtype = {8: np.uint8, 16: np.uint16}[bits]
    assert low.shape == img.shape and low.dtype == dtype and high.dtype == dtype
    scale = pixel_max(dtype) / 255
    assert abs(float(low.mean()) / scale - float(img.mean())) < 1.0  # DC kept
    assert abs(float(high.mean()) / scale - 127.5) < 1.5  # DC removed, stored around mid-grey


def test_official_mask_is_a_centred_box():
    keep = np.fft.fftshift(band_mask(8, 8, "lowpass", 0.5, mask="official"))
    assert keep.sum() == 16 and keep[2:6, 2:6].all()  # ry = int(0.5 * 4) = 2
    high = np.fft.fftshift(band_mask(8, 8, "highpass", 0.25, mask="official"))
    assert (~high).sum() == 4 and not high[3:5, 3:5].any()  # removes the box of edge 0.25


def test_official_mask_cutoff_is_the_band_edge_of_both_bands():
    """The official --cutoff 0.2 keeps a box of half-side int(0.2 * 128) for lowpass and
    removes one of half-side int((1 - 0.2) * 128) for highpass: our cutoffs 0.2 and 0.8."""
    size = 256
    low = band_mask(size, size, "lowpass", 0.2, mask="official")
    high = band_mask(size, size, "highpass", 0.8, mask="official")
    assert low.sum() == (2 * 25) ** 2 and (~high).sum() == (2 * 102) ** 2
    # Kept high-pass bins have max(|f_x|, |f_y|) >= 0.8 f_N (the box is one bin asymmetric).
    fy = np.abs(np.fft.fftfreq(size))[:, None] / 0.5
    fx = np.abs(np.fft.fftfreq(size))[None, :] / 0.5
    assert np.maximum(fx, fy)[high].min() >= 0.8 - 2 / size
    assert np.maximum(fx, fy)[~high].max() < 0.8


def test_radial_frequency_is_in_nyquist_units():
    f = radial_frequency(8, 8)
    assert f[0, 0] == 0 and f[0, 4] == pytest.approx(1.0)


def test_bad_cutoff_is_rejected():
    with pytest.raises(ValueError, match="cutoff"):
        band_mask(8, 8, "lowpass", 1.5)
