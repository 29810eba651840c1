"""Low-/high-pass probes keep the band they name, and nothing else."""

import numpy as np
import pytest

from synth2real.probes.frequency import band_mask, filter_float, filter_images, radial_frequency
from synth2real.probes.transform import frequency_probe, map_split
from synth2real.shards import encode_png, load_split, pixel_max, write_shard


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


# ------------------------------------------------------------ shard in, probe, shard out
#: 40 px: a horizontal cosine of k cycles is exactly FFT bin k, at f = 2k/40 f_N.
SIZE = 40
BIN = {0.9: 18, 0.5: 10, 0.1: 2, 0.3: 6}  # f / f_N -> cycles across the image
#: The kept component must keep its energy within 1 % through rgb shard -> probe -> view
#: shard -> reader; the removed one must keep under 1e-6 of its energy (0.1 % amplitude).
KEPT_TOLERANCE, REMOVED_LIMIT = 0.01, 1e-6


def waves(components):
    """A uint8 RGB image of mid-grey plus cosines ``(grey levels, f / f_N, phase)``."""
    x = np.arange(SIZE)
    v = 0.5 + sum(a / 255 * np.cos(2 * np.pi * BIN[f] * x / SIZE + ph) for a, f, ph in components)
    row = np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)
    return np.broadcast_to(row[None, :, None], (SIZE, SIZE, 3)).copy()


def probe_round_trip(tmp_path, image, spec):
    """(input, view) as floats in [0, 1]: the image written as an rgb shard with the shard
    writer, probed by the probe job's own entry (map_split + frequency_probe), read back with
    the loaders' reader (load_split of the view directory)."""
    src = tmp_path / "rgb" / "shard-00000.parquet"
    write_shard(
        {"image": [encode_png(image)], "label": [0], "class_id": ["c0"], "prompt": [""],
         "seed": [0], "source_id": ["s0"]},
        src,
    )  # fmt: skip
    out = tmp_path / spec["transform"]
    map_split([src], out, lambda i, o: frequency_probe(i, o, spec))
    (original,), _ = load_split([src])
    (view,), labels = load_split([out])
    assert labels.tolist() == [0] and view.shape == image.shape
    return original / pixel_max(original.dtype), view / pixel_max(view.dtype)


def bin_energy(image, f):
    """Energy of the (0, BIN[f]) FFT bin of the first channel (the wave's own bin)."""
    return float(np.abs(np.fft.fft2(image[..., 0])[0, BIN[f]]) ** 2)


BANDS = {
    # A kept wave of 2 grey levels, the size of the >= 0.8 f_N band of real images (the
    # digits demo's band: 3.5 levels rms); a removed wave of 20 levels.
    "highpass": (0.8, [(2.0, 0.9, 0.7), (20.0, 0.5, 0.3)]),
    "lowpass": (0.2, [(20.0, 0.1, 0.4), (20.0, 0.3, 0.3)]),
}


def round_trip_ratios(tmp_path, band, bits):
    cutoff, components = BANDS[band]
    spec = {"transform": band, "cutoff": cutoff, "mask": "radial", "bits": bits}
    original, view = probe_round_trip(tmp_path, waves(components), spec)
    (_, kept, _), (_, removed, _) = components
    return (
        bin_energy(view, kept) / bin_energy(original, kept),
        bin_energy(view, removed) / bin_energy(original, removed),
    )


@pytest.mark.parametrize("band", ["highpass", "lowpass"])
def test_probe_shard_keeps_its_band_and_removes_the_other(tmp_path, band):
    kept, removed = round_trip_ratios(tmp_path, band, bits=16)
    assert abs(kept - 1) < KEPT_TOLERANCE, kept  # measured: highpass 1.0004, lowpass 1.0000
    assert removed < REMOVED_LIMIT, removed  # measured: ~1e-9


@pytest.mark.parametrize("band", ["highpass", "lowpass"])
def test_8_bit_views_fail_the_round_trip(tmp_path, band):
    """Why views are 16-bit: 8-bit storage of the same bands misses both bounds (measured:
    highpass keeps 0.81 of the wave's energy, lowpass 1.02; removed waves leak back ~5e-5)."""
    kept, removed = round_trip_ratios(tmp_path, band, bits=8)
    assert abs(kept - 1) > KEPT_TOLERANCE and removed > REMOVED_LIMIT


def test_16_bit_view_reads_like_an_8_bit_one_downstream(tmp_path):
    """A view reaches the network on one scale, whatever its storage: the eval transform and
    the in-memory input of a 16-bit view equal those of the 8-bit view within 8-bit rounding."""
    import torch

    from synth2real.train.augment import TransformSpec, eval_transform
    from synth2real.train.data import to_input

    image = waves(BANDS["highpass"][1])
    views = {}
    for bits in (8, 16):
        spec = {"transform": "highpass", "cutoff": 0.8, "mask": "radial", "bits": bits}
        probe_round_trip(tmp_path / str(bits), image, spec)
        (views[bits],), _ = load_split([tmp_path / str(bits) / "highpass"])
    assert views[8].dtype == np.uint8 and views[16].dtype == np.uint16
    step = 0.5 / 255 / 0.25  # half an 8-bit step under the paper normalisation
    for fn in (to_input, eval_transform(TransformSpec())):
        a, b = (fn(torch.from_numpy(views[k])[None]) for k in (8, 16))
        assert torch.allclose(a, b, atol=step + 1e-6)
        assert not torch.equal(a, b)  # and the 16-bit one is not the 8-bit one
