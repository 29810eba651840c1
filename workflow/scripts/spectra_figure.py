"""Spectra of all datasets beside real, and each one's fitted power-law slope."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real.io import write_csv_atomic  # noqa: E402
from synth2real.metrics.spectra import fit_power_law, plot_spectra  # noqa: E402

band = tuple(snakemake.params.spectra["band"])
frames = [pd.read_csv(p) for p in snakemake.input]
spectra = {f.dataset.iloc[0]: (f.frequency.to_numpy(), f.amplitude.to_numpy()) for f in frames}
plot_spectra(spectra, snakemake.output.png, snakemake.output.pdf, reference="real", band=band)
write_csv_atomic(pd.concat(frames, ignore_index=True), snakemake.output.csv)
slopes = pd.DataFrame(
    [{"dataset": d, "alpha": fit_power_law(f, a, band)} for d, (f, a) in spectra.items()]
)
slopes["alpha_minus_real"] = slopes.alpha - float(slopes.set_index("dataset").alpha["real"])
write_csv_atomic(slopes, snakemake.output.slopes, float32=True)
log.info("%s", slopes.to_string(index=False))
