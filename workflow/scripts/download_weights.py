"""Download one hub generator's weights into resources/weights/<id>/ (login node)."""

from pathlib import Path

import script_setup

log = script_setup.init(snakemake)

from synth2real.generate.pipelines import download_weights  # noqa: E402

path = download_weights(snakemake.params.spec, Path(snakemake.output[0]).parent)
log.info("weights in %s", path)
