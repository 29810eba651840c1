"""Architectures: BagNet-9 really sees 9x9 patches; every arch gives logits and features."""

import pytest
import torch

from synth2real.train.architectures import bagnet9, bagnet_receptive_field, build_model, features


def patch_support(model, size, channels_last_pos):
    """Input pixels whose gradient is non-zero for one output position's logit."""
    x = torch.randn(1, 3, size, size, requires_grad=True)
    logits = model.patch_logits(x)
    i, j = channels_last_pos
    logits[0, 0, i, j].backward()
    nz = (x.grad[0].abs().sum(0) > 0).nonzero()
    return nz, logits.shape


@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 8, "layers": (1, 1, 1, 1)},  # the paper's strides and kernels, narrow
        {"width": 8, "layers": (1, 1, 1, 1), "strides": (1, 1, 1, 1), "kernel3": (1, 1, 1, 0)},
    ],
)
def test_bagnet9_receptive_field_is_9x9(kwargs):
    torch.manual_seed(0)
    model = bagnet9(5, **kwargs).eval()
    for pos in [(0, 0), (1, 1)]:
        nz, shape = patch_support(model, 48, pos)
        assert shape[2] > 1 and shape[3] > 1
        rows, cols = nz[:, 0], nz[:, 1]
        assert int(rows.max() - rows.min()) + 1 == 9
        assert int(cols.max() - cols.min()) + 1 == 9
        assert len(nz) == 81  # every pixel of the window matters, none outside it


def test_receptive_field_formula_rejects_other_sizes():
    assert bagnet_receptive_field((3, 4, 6, 3), (2, 2, 2, 1), (1, 1, 1, 1)) == 33
    assert bagnet_receptive_field((3, 4, 6, 3), (2, 2, 2, 1), (1, 1, 1, 0)) == 17
    with pytest.raises(ValueError, match="17x17"):
        bagnet9(3, kernel3=(1, 1, 1, 0))


@pytest.mark.parametrize(
    "arch,kwargs", [("smallcnn", {"width": 8}), ("bagnet9", {"width": 8, "layers": (1, 1, 1, 1)})]
)
def test_logits_and_features(arch, kwargs):
    model = build_model(arch, 7, **kwargs).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert features(model, x).shape == (2, model.num_features)


def test_timm_arch_is_created_by_config_id():
    model = build_model("resnet50", 4, pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 4)
    assert features(model, x).shape == (1, 2048)


def test_unknown_arch_is_named():
    with pytest.raises(ValueError, match="nope"):
        build_model("nope", 3)


def drop_path_rates(model: torch.nn.Module) -> list[float]:
    """The drop probability of every stochastic-depth module (timm's DropPath), block order."""
    from timm.layers import DropPath

    return [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]


@pytest.mark.parametrize(
    ("arch", "paper", "official", "blocks"),
    [("convnext_tiny", 0.0, 0.1, 18), ("swin_tiny", 0.1, 0.2, 12)],
)
def test_official_recipe_sets_torchvision_stochastic_depth(arch, paper, official, blocks):
    """recipe official: torchvision's stochastic depth (ConvNeXt-T 0.1, Swin-T 0.2, rising
    linearly over the blocks); recipe paper: timm's defaults; an explicit arch kwarg wins."""
    from synth2real.train.recipe import resolve_recipe

    train = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
    for name, top in (("paper", paper), ("official", official)):
        recipe, _ = resolve_recipe({**train, "recipe": name}, "identity", arch, seed=0)
        rates = drop_path_rates(build_model(arch, 3, **recipe.arch_kwargs))
        if top == 0.0:
            assert rates == []  # timm builds Identity, not DropPath(0)
        else:
            # one rate per block but the first (0: Identity); Swin has two DropPaths a block
            assert len(set(rates)) == blocks - 1
            assert rates[-1] == pytest.approx(top)
            assert rates == sorted(rates)
    pinned, _ = resolve_recipe(
        {**train, "recipe": "official"},
        "identity",
        arch,
        seed=0,
        arch_kwargs={"drop_path_rate": 0.05},
    )
    assert pinned.arch_kwargs == {"drop_path_rate": 0.05}
    other, _ = resolve_recipe({**train, "recipe": "official"}, "identity", "resnet50", seed=0)
    assert other.arch_kwargs == {}
