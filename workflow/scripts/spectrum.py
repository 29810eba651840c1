"""Mean radial amplitude spectrum of one dataset's train split."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real.io import write_csv_atomic  # noqa: E402
from synth2real.metrics.spectra import dataset_spectrum  # noqa: E402

opts = snakemake.params.spectra
freqs, amps = dataset_spectrum(
    shard_paths=list(snakemake.input),
    n_bins=opts["n_bins"],
    max_images=opts["max_images"],
)
frame = pd.DataFrame(
    {"dataset": snakemake.wildcards.dataset, "frequency": freqs, "amplitude": amps}
)
write_csv_atomic(frame, snakemake.output[0])
log.info("%d bins -> %s", len(frame), snakemake.output[0])
