"""Caption the real digits by their measured attributes (synth2real.captions.digits)."""

import script_setup

log = script_setup.init(snakemake)

from synth2real.captions.digits import caption_splits  # noqa: E402

tables = {"train": snakemake.input.shards}
outputs = {"train": snakemake.output.captions}
for split in ("val", "test"):
    if snakemake.input.get(f"{split}_shards"):
        tables[split] = snakemake.input.get(f"{split}_shards")
        outputs[split] = snakemake.output.get(f"{split}_captions")
for split, n in caption_splits(tables, outputs).items():
    log.info("captioned %d %s image(s)", n, split)
