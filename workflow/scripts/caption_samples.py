"""Paper Table 3: sample captions of evenly spaced classes."""

import script_setup

log = script_setup.init(snakemake)

import pyarrow.parquet as pq  # noqa: E402

from synth2real.figures.examples import caption_samples, caption_samples_markdown  # noqa: E402
from synth2real.figures.tables import table_classes  # noqa: E402
from synth2real.io import atomic_write_bytes  # noqa: E402
from synth2real.prompts.plan import class_table  # noqa: E402

cfg = snakemake.params.config
classes = class_table(cfg)
captions = pq.read_table(snakemake.input.captions).to_pandas()
labels = table_classes(len(classes), cfg["figures"]["table_classes"])
samples = caption_samples(captions, classes, labels, cfg["figures"]["table_samples_per_class"])
models = sorted(set(captions["model"])) if "model" in captions else []
atomic_write_bytes(snakemake.output[0], caption_samples_markdown(samples, models).encode())
log.info("%d captions -> %s", len(samples), snakemake.output[0])
