"""Draw the summary figures."""

import script_setup

log = script_setup.init(snakemake)

import pandas as pd  # noqa: E402

from synth2real import figures  # noqa: E402

cfg = snakemake.params.config
out = snakemake.output
results = pd.read_csv(snakemake.input.results)
distribution = pd.read_csv(snakemake.input.distribution)
arch = cfg["reference_arch"]
names = snakemake.params.names
enabled = {p: s for p, s in cfg["probes"].items() if s.get("enabled", True)}

figures.accuracy_figure(results, snakemake.params.order, arch, out.accuracy_png[:-4], names)
figures.probes_figure(results, enabled, arch, out.probes_png[:-4])
figures.density_coverage_figure(results, distribution, arch, out.density_coverage_png[:-4])
figures.transfer_figure(results, arch, out.transfer_png[:-4])
log.info("figures written")
