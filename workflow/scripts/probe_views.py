"""Paper Fig. 2: one real and one synthetic image under every probe."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.figures.examples import probe_view_images, probe_views_figure  # noqa: E402

p = snakemake.params
cells, points = probe_view_images(p.sources, p.probes)
probe_views_figure(cells, points, p.labels, snakemake.output.png[:-4])
log.info("%d cells -> %s", len(points), snakemake.output.png)
