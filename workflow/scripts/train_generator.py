"""Train the demo's conditional DDPM on the real train split (and its captions, if any)."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

from synth2real.generate.digits_ddpm import train_from_shards  # noqa: E402

info = train_from_shards(
    list(snakemake.input.shards),
    snakemake.output[0],
    seed=snakemake.params.seed,
    captions=snakemake.input.get("captions") or None,
    **snakemake.params.ddpm,
)
log.info("trained: %s", info)
