"""CLIPScore of a caption dataset's images against their prompts."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

import pandas as pd  # noqa: E402

from synth2real.io import write_csv_atomic  # noqa: E402
from synth2real.metrics.clip import (  # noqa: E402
    caption_overflow_fraction,
    load_clip,
    shard_clip_scores,
)

device = script_setup.device(snakemake.config)
bundle = load_clip(script_setup.weights_dir(snakemake.input.clip), device)
scores, texts = shard_clip_scores(bundle, list(snakemake.input.shards))
row = {
    "dataset": snakemake.wildcards.synth,
    "clipscore": float(scores.mean()),
    "clipscore_std": float(scores.std()),
    "n": len(scores),
    "frac_over_77_tokens": caption_overflow_fraction(bundle.tokenizer, texts),
}
write_csv_atomic(pd.DataFrame([row]), snakemake.output[0], float32=True)
log.info("%s", row)
