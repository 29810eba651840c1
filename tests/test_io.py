"""Metric tables are written at float32 precision: the same numbers, printed shortest."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from synth2real.io import float32_decimal, write_csv_atomic


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (float(np.float32(0.944)), "0.944"),  # a float32 top-1 (472 of 500)
        (0.9440000057220459, "0.944"),
        (0.18700000000000003, "0.187"),  # float64 noise of a share of counts
        (float(np.float32(1) / np.float32(3)), "0.33333334"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (2.5e-06, "2.5e-06"),
        (3308.8243639009597, "3308.8245"),
        (-0.021830537943759776, "-0.021830538"),
    ],
)
def test_float32_decimal_prints_the_shortest_float32_decimal(value, text):
    out = float32_decimal(value)
    assert repr(out) == text
    assert np.float32(out) == np.float32(value)  # the same number at float32


def test_float32_decimal_keeps_every_float32_and_passes_nan_and_inf():
    values = np.random.default_rng(0).standard_normal(2000).astype(np.float32) * 10.0 ** (
        np.arange(2000) % 13 - 6
    ).astype(np.float32)
    for v in values:
        assert np.float32(float32_decimal(float(v))) == v
    assert math.isnan(float32_decimal(math.nan))
    assert float32_decimal(math.inf) == math.inf


def test_metric_csv_bytes_old_and_new(tmp_path):
    """One summary line before and after: only the float column is printed shortest; ints,
    strings and a JSON column are left as they are."""
    frame = pd.DataFrame(
        {
            "train_dataset": ["ddpm-cfg1-classname"],
            "top1": [float(np.float32(0.944))],
            "n": [16777217],  # an int above 2**24 is not a float: untouched
            "per_class": [json.dumps({"0": 0.96})],
        }
    )
    old = write_csv_atomic(frame, tmp_path / "old.csv").read_bytes()
    new = write_csv_atomic(frame, tmp_path / "new.csv", float32=True).read_bytes()
    assert old.splitlines()[1] == b'ddpm-cfg1-classname,0.9440000057220459,16777217,"{""0"": 0.96}"'
    assert new.splitlines()[1] == b'ddpm-cfg1-classname,0.944,16777217,"{""0"": 0.96}"'
    assert frame.top1.iloc[0] == float(np.float32(0.944))  # the caller's frame is not changed
    back = pd.read_csv(tmp_path / "new.csv")
    assert np.float32(back.top1.iloc[0]) == np.float32(frame.top1.iloc[0])
