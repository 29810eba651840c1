"""The demo's DDPM: class- and caption-conditioning, save/load, and seeded sampling."""

import numpy as np
import pytest
import torch

from synth2real.captions import digits as cd
from synth2real.data.digits import CLASS_NAMES, load_digits_array
from synth2real.generate import digits_ddpm as dd


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddpm")
    x, y = load_digits_array()
    x, y = x[:200], y[:200]
    values = cd.measure(x)
    bins = cd.bins(values, y, cd.fit_thresholds(values, y))
    info = dd.train_ddpm(x, y, bins, 10, out, steps=30, batch_size=32, lr=2e-3, width=8,
                         train_timesteps=100, cond_drop=0.15, caption_drop=0.3,
                         ema_decay=0.9, seed=0)  # fmt: skip
    return out, info


def test_training_saves_the_ema_weights_and_the_v_schedule(trained):
    out, info = trained
    assert info["captions"] and info["parameters"] > 1000 and np.isfinite(info["final_loss"])
    unet, cond, scheduler = dd.load_ddpm(out)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.rescale_betas_zero_snr and not scheduler.config.clip_sample
    assert scheduler.config.timestep_spacing == "trailing"
    assert cond.config.num_classes == 10 and len(cond.attributes) == len(cd.ATTRIBUTES)


def test_prompts_map_to_class_and_caption_bins():
    labels, bins = dd.prompt_condition(
        ["three", "seven, thick strokes, upright, narrow, tall"], CLASS_NAMES
    )
    assert labels == [3, 7]
    assert bins.tolist() == [[dd.N_BINS] * 4, [2, 1, 0, 2]]
    with pytest.raises(ValueError, match="class name"):
        dd.prompt_condition(["a cat"], CLASS_NAMES)


def test_sampling_is_seeded_per_row_and_the_caption_changes_the_image(trained):
    out, _ = trained
    pipe = dd.DigitsPipeline.from_pretrained(out, CLASS_NAMES, 16)
    prompts = ["three", "three, thick strokes, upright, wide, tall", "five"]

    def run(ps, seeds, w):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return pipe(ps, gens, num_inference_steps=5, guidance_scale=w).images

    together = run(prompts, [1, 1, 2], 2.0)
    alone = run(prompts[1:2], [1], 2.0)
    assert together.shape == (3, 16, 16, 3)
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)  # batch-invariant
    assert np.abs(together[0] - together[1]).max() > 1e-3  # same noise, caption differs
    assert np.abs(run(prompts[:1], [1], 1.0) - together[:1]).max() > 1e-3  # guidance acts
