"""Download one hub model's weights into resources/weights/<id>/ (a machine with internet)."""

from pathlib import Path

import script_setup

log = script_setup.init(snakemake)

from synth2real.generate.pipelines import download_weights  # noqa: E402
from synth2real.io import atomic_write_json  # noqa: E402

snapshot = download_weights(snakemake.params.source, Path(snakemake.output[0]).parent)
atomic_write_json(snakemake.output[0], snapshot.record())  # the flag names the commit
log.info("weights in %s (commit %s)", snapshot.path, snapshot.commit)
