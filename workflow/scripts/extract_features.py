"""Feature vectors of one dataset's train split."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.features import classifier_features, save_features  # noqa: E402

metrics = snakemake.params.metrics
device = script_setup.device(snakemake.params.config)
shards = list(snakemake.input.shards)
if metrics["feature_extractor"] == "classifier":
    feats, labels = classifier_features(snakemake.input.model, shards, device)
else:
    from synth2real.clip_features import extract_clip_features

    feats, labels = extract_clip_features(metrics["clip_model"], shards, device=device)
save_features(snakemake.output[0], feats, labels)
log.info("features %s -> %s", feats.shape, snakemake.output[0])
