"""Classifier architectures, created by name.

Paper architectures come from timm's registry; BagNet (which timm lacks) and the demo's small
CNN are defined here. Every model answers ``features(model, x)`` with its penultimate-layer
embedding, which the demo uses as the feature space for density and coverage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Config arch id -> timm model name.
TIMM_ARCHS: dict[str, str] = {
    "resnet50": "resnet50",
    "vit_tiny": "vit_tiny_patch16_224",
    "convnext_tiny": "convnext_tiny",
    "swin_tiny": "swin_tiny_patch4_window7_224",
}


class SmallCNN(nn.Module):
    """A VGG-style CNN for small (16-64 px) images; big enough for digits, fast on a CPU."""

    def __init__(self, num_classes: int, width: int = 32, dropout: float = 0.2) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        w = width
        self.body = nn.Sequential(
            block(3, w), block(w, w), nn.MaxPool2d(2),
            block(w, 2 * w), block(2 * w, 2 * w), nn.MaxPool2d(2),
            block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, num_classes)
        self.num_features = 4 * w

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.forward_features(x)))


class Bottleneck(nn.Module):
    """ResNet bottleneck whose middle conv is 3x3 *unpadded* or 1x1.

    Unpadded convolutions are what keep each output position's receptive field a fixed local
    patch; the residual is cropped to the conv output, as in Brendel & Bethge (2019).
    """

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, kernel: int) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel, stride=stride, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.down is None else self.down(x)
        h, w = out.shape[-2:]
        return self.relu(out + res[..., :h, :w])


class BagNet(nn.Module):
    """Bag-of-local-features net: logits per image patch, averaged over positions.

    ``kernel3[i]`` says how many blocks of stage ``i`` use a 3x3 conv (the rest are 1x1). With
    strides (2, 2, 2, 1) and kernel3 (1, 1, 0, 0) each output sees a 9x9 input patch (BagNet-9):
    stem 3x3 -> 3, stage 1 (stride 2) -> 5, stage 2 (jump 2, stride 2) -> 9, then 1x1 only.
    """

    def __init__(
        self,
        num_classes: int,
        layers: Sequence[int] = (3, 4, 6, 3),
        width: int = 64,
        strides: Sequence[int] = (2, 2, 2, 1),
        kernel3: Sequence[int] = (1, 1, 0, 0),
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 1, bias=False),
            nn.Conv2d(width, width, 3, padding=0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        cin, stages = width, []
        for i, (n, stride, k3) in enumerate(zip(layers, strides, kernel3)):
            planes = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(cin, planes, stride if j == 0 else 1, 3 if j < k3 else 1))
                cin = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)
        self.num_features = cin

    def patch_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def patch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, classes, H', W'): one logit map per local patch."""
        return self.fc(self.patch_features(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fc is linear, so mean of patch logits == fc of mean patch features.
        return self.fc(self.forward_features(x))


def bagnet_receptive_field(
    layers: Sequence[int], strides: Sequence[int], kernel3: Sequence[int]
) -> int:
    """Side of the input patch one BagNet output position sees (stem 3x3, then the stages)."""
    rf, jump = 3, 1
    for n, stride, k3 in zip(layers, strides, kernel3):
        for j in range(n):
            if j < k3:
                rf += 2 * jump
            if j == 0:
                jump *= stride
    return rf


def bagnet9(
    num_classes: int,
    width: int = 64,
    layers: Sequence[int] = (3, 4, 6, 3),
    strides: Sequence[int] = (2, 2, 2, 1),
    kernel3: Sequence[int] = (1, 1, 0, 0),
) -> BagNet:
    """BagNet-9. Defaults are the paper's; small images (the demo) use stride 1 everywhere
    and three 3x3 stages, which keeps the 9x9 patch while leaving many patch positions."""
    rf = bagnet_receptive_field(layers, strides, kernel3)
    if rf != 9:
        raise ValueError(
            f"bagnet9 with strides={strides}, kernel3={kernel3} sees {rf}x{rf} patches"
        )
    return BagNet(num_classes, layers=layers, width=width, strides=strides, kernel3=kernel3)


def build_model(arch: str, num_classes: int, **kwargs: object) -> nn.Module:
    """Create a classifier by config id: ``smallcnn``, ``bagnet9`` or a :data:`TIMM_ARCHS` key."""
    if arch == "smallcnn":
        return SmallCNN(num_classes, **kwargs)  # type: ignore[arg-type]
    if arch == "bagnet9":
        return bagnet9(num_classes, **kwargs)  # type: ignore[arg-type]
    if arch in TIMM_ARCHS:
        import timm

        return timm.create_model(TIMM_ARCHS[arch], num_classes=num_classes, **kwargs)
    known = ", ".join(["smallcnn", "bagnet9", *TIMM_ARCHS])
    raise ValueError(f"unknown architecture {arch!r}; known: {known}")


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate-layer embedding (N, D) of any model built by :func:`build_model`."""
    if hasattr(model, "forward_head"):  # timm
        return model.forward_head(model.forward_features(x), pre_logits=True)
    return model.forward_features(x)
