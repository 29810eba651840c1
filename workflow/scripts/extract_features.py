"""Feature vectors of one dataset's train split (real-trained classifier or CLIP)."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.metrics.features import classifier_features, save_features  # noqa: E402

metrics = snakemake.params.metrics
device = script_setup.device(snakemake.config)
shards = list(snakemake.input.shards)
if metrics["feature_extractor"] == "classifier":
    feats, labels = classifier_features(snakemake.input.model, shards, device)
else:
    from synth2real.metrics.clip import extract_features, load_clip

    bundle = load_clip(script_setup.weights_dir(snakemake.input.model), device)
    feats, labels = extract_features(bundle, shards)
save_features(snakemake.output[0], feats, labels)
log.info("features %s -> %s", feats.shape, snakemake.output[0])
