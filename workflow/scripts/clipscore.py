"""CLIPScore of a caption dataset's images against their prompts (or the digits' stand-in)."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

import pandas as pd  # noqa: E402

from synth2real.io import write_csv_atomic  # noqa: E402


def clip_row() -> dict:
    """CLIPScore (ViT-L/14) of the images against their prompts."""
    from synth2real.metrics.clip import (
        caption_overflow_fraction,
        load_clip,
        shard_clip_scores,
    )

    device = script_setup.device(snakemake.config)
    bundle = load_clip(script_setup.weights_dir(snakemake.input.clip), device)
    scores, texts = shard_clip_scores(bundle, list(snakemake.input.shards))
    return {
        "clipscore": float(scores.mean()),
        "clipscore_std": float(scores.std()),
        "n": len(scores),
        "frac_over_77_tokens": caption_overflow_fraction(bundle.tokenizer, texts),
        "measure": "CLIPScore",
    }


def attributes_row() -> dict:
    """The digits' stand-in: caption agreement (synth2real.metrics.stand_ins)."""
    from synth2real.metrics.stand_ins import CAPTION, caption_score

    values = caption_score(list(snakemake.input.shards), snakemake.input.captions)
    return {**values, "measure": CAPTION}


stand_in = snakemake.params.metrics.get("caption_score") == "attributes"
row = {"dataset": snakemake.wildcards.synth, **(attributes_row() if stand_in else clip_row())}
write_csv_atomic(pd.DataFrame([row]), snakemake.output[0], float32=True)
log.info("%s", row)
