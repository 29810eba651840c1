"""Train one classifier (several GPUs: DDP ranks under torchrun)."""

import script_setup

log = script_setup.init(snakemake)
script_setup.torch_threads(snakemake)

import torch  # noqa: E402

from synth2real.train.ddp import launch_distributed  # noqa: E402
from synth2real.train.recipe import resolve_recipe  # noqa: E402
from synth2real.train.training import train_classifier  # noqa: E402

wc = snakemake.wildcards
recipe, runtime = resolve_recipe(
    script_setup.with_runtime(snakemake.params.train, snakemake.config["train"]),
    probe_transform=snakemake.params.probe_transform,
    arch=wc.arch,
    seed=snakemake.params.seed,
    arch_kwargs=snakemake.params.arch_kwargs,
)
log.info("recipe %s, runtime %s", recipe, runtime)
device = script_setup.device(snakemake.config)
job = dict(
    train_shards=list(snakemake.input.train),
    val_shards=list(snakemake.input.val),
    arch=wc.arch,
    num_classes=snakemake.params.num_classes,
    recipe=recipe,
    runtime=runtime,
    model_path=snakemake.output.model,
    history_path=snakemake.output.history,
    checkpoint_path=snakemake.params.checkpoint,
    device=device,
)
gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
if gpus > 1:
    log.info("%d GPUs visible: DDP with %d ranks", gpus, gpus)
    launch_distributed(gpus, job)
else:
    log.info("best epoch: %s", train_classifier(**job))
