"""The colorization networks, after pix2pix (Isola et al. 2017): a U-Net generator (L -> ab), or one whose encoder is
a pretrained image classifier's (as DeOldify's), a PatchGAN discriminator on (L, ab) pairs, N(0, 0.02) initialisation
and the GAN loss. Both networks take any H×W."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.encoders import ENCODERS
from pipeline.model.lab import LabNormalization, lab_to_rgb
from pipeline.model.params import DiscriminatorParams, GeneratorParams

_T = TypeVar("_T")
_MAX_FILTER_MULTIPLE = 8  # channels grow ×2 per level up to 8 × base_filters, as pix2pix
_MAX_DROPOUT_BLOCKS = 3
L_CHANNELS, AB_CHANNELS = 1, 2  # the generator maps lightness to the two color channels; the discriminator sees both


def _choose(choices: dict[str, _T], name: str, what: str) -> _T:
    """`choices[name]`, or a ValueError that names the valid choices."""
    if name not in choices:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(sorted(choices))}")
    return choices[name]


_NORMS: dict[str, Callable[[int], nn.Module]] = {
    "batch": nn.BatchNorm2d,
    "instance": nn.InstanceNorm2d,  # no affine parameters, no running statistics, as pix2pix
}


def _norm(kind: str, channels: int) -> nn.Module:
    return _choose(_NORMS, kind, "norm")(channels)


def _upsampling_conv(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """A ×2 upsampling convolution: pix2pix's 4×4 transposed conv, or a nearest resize then a 3×3 conv (Odena et al.
    2016), which cannot leave a checkerboard."""
    if kind == "transpose":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=bias)
    if kind == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=bias))
    raise ValueError(f"unknown upsample {kind!r}; choose one of resize, transpose")


def _filters(base: int, level: int) -> int:
    return base * min(2**level, _MAX_FILTER_MULTIPLE)


def _pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings `size` up to a multiple of `multiple`, split evenly."""
    total = -size % multiple
    return total // 2, total - total // 2


def _down_block(cfg: GeneratorParams, channels: list[int], level: int) -> nn.Module:
    """Encoder level `level`: halves H and W. The first has no activation before it, the innermost no norm."""
    if level == 0:
        return nn.Conv2d(L_CHANNELS, channels[0], 4, 2, 1)
    innermost = level == cfg.depth - 1
    return nn.Sequential(
        nn.LeakyReLU(0.2),
        nn.Conv2d(channels[level - 1], channels[level], 4, 2, 1, bias=innermost or cfg.norm != "batch"),
        nn.Identity() if innermost else _norm(cfg.norm, channels[level]),
    )


def _up_block(cfg: GeneratorParams, channels: list[int], level: int) -> nn.Module:
    """Decoder level `level`: doubles H and W; its input is the level below's output and, above the
    bottleneck, the encoder's skip at this level. The outermost ends in Tanh."""
    in_channels = channels[level] if level == cfg.depth - 1 else 2 * channels[level]
    if level == 0:
        return nn.Sequential(nn.ReLU(), _upsampling_conv(cfg.upsample, in_channels, AB_CHANNELS, True), nn.Tanh())
    dropout = cfg.depth - 1 - _MAX_DROPOUT_BLOCKS <= level < cfg.depth - 1
    return nn.Sequential(
        nn.ReLU(),
        _upsampling_conv(cfg.upsample, in_channels, channels[level - 1], cfg.norm != "batch"),
        _norm(cfg.norm, channels[level - 1]),
        nn.Dropout(cfg.dropout) if dropout else nn.Identity(),
    )


class UNetGenerator(nn.Module):
    """pix2pix's U-Net: `depth` stride-2 4×4 convs down, transposed convs up with skip connections, Tanh out.

    Any H×W: the input is reflect-padded to a multiple of 2**depth and the output cropped back. The innermost
    (bottleneck) conv has no norm, so batch norm trains even on one image with a 1×1 bottleneck. Dropout
    follows the (up to 3) decoder blocks just outside the bottleneck, as in pix2pix.
    """

    def __init__(self, cfg: GeneratorParams) -> None:
        super().__init__()
        self.depth = cfg.depth
        channels = [_filters(cfg.base_filters, level) for level in range(cfg.depth)]
        self.down = nn.ModuleList(_down_block(cfg, channels, level) for level in range(cfg.depth))
        self.up = nn.ModuleList(_up_block(cfg, channels, level) for level in range(cfg.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        top, bottom = _pad_amounts(height, 2**self.depth)
        left, right = _pad_amounts(width, 2**self.depth)
        reflectable = max(top, bottom) < height and max(left, right) < width
        x = F.pad(x, (left, right, top, bottom), mode="reflect" if reflectable else "replicate")

        features = []
        for down in self.down:
            x = down(x)
            features.append(x)
        x = self.up[-1](features[-1])
        for up, skip in zip(reversed(self.up[:-1]), reversed(features[:-1])):
            x = up(torch.cat([skip, x], dim=1))
        return x[..., top : top + height, left : left + width]


class EncoderUNetGenerator(nn.Module):
    """A U-Net whose encoder is a pretrained ImageNet classifier (`cfg.encoder`) and whose decoder predicts ab.

    The encoder sees the neutral gray of the input's lightness as it saw RGB in training, scaled by `cfg.encoder_scale`
    (a larger view of a small photo: DeOldify's render factor); its batch norm keeps the ImageNet statistics (always in
    eval mode). Each decoder level doubles H and W (nearest, then a 3×3 conv) and joins the encoder's map of that
    stride, up to its stride-2 map; that is resized to the input's size (at `encoder_scale` 2, it is that size already)
    and joined with the input's L for the last conv, so that the colour follows the edges of the photo itself. Any H×W.
    """

    def __init__(self, cfg: GeneratorParams) -> None:
        super().__init__()
        self.encoder = _choose(ENCODERS, cfg.encoder, "encoder")()
        self.scale = cfg.encoder_scale
        skips = self.encoder.channels[:-1]  # at strides 2, 4, 8, 16
        widths = [cfg.base_filters * 2**level for level in range(len(skips) + 1)]  # the input's size, then the strides
        below = [*widths[2:], self.encoder.channels[-1]]
        self.decoder = nn.ModuleList(_decoder_block(cfg.norm, below[level] + skips[level], widths[level + 1]) for level in range(len(skips)))
        self.head = nn.Sequential(_decoder_block(cfg.norm, widths[1] + L_CHANNELS, widths[0]), nn.Conv2d(widths[0], AB_CHANNELS, 3, 1, 1), nn.Tanh())
        self.stride = 2 ** (len(skips) + 1)
        self.train()

    def train(self, mode: bool = True) -> EncoderUNetGenerator:
        super().train(mode)
        self.encoder.eval()  # the ImageNet statistics, never this batch's
        return self

    def forward(self, l_norm: torch.Tensor) -> torch.Tensor:
        height, width = l_norm.shape[-2:]
        scaled = l_norm if self.scale == 1 else F.interpolate(l_norm, scale_factor=self.scale, mode="bilinear", align_corners=False)
        scaled_height, scaled_width = scaled.shape[-2:]
        top, bottom = _pad_amounts(scaled_height, self.stride)
        left, right = _pad_amounts(scaled_width, self.stride)
        features = self.encoder(self.encoder.normalize(neutral_gray(F.pad(scaled, (left, right, top, bottom), mode="replicate"))))
        x = features.pop()
        for block, skip in zip(reversed(self.decoder), reversed(features), strict=True):
            x = block(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1))
        x = x[..., top // 2 : (top + scaled_height) // 2, left // 2 : (left + scaled_width) // 2]  # the stride-2 map, unpadded
        if x.shape[-2:] != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        return self.head(torch.cat([x, l_norm], dim=1))

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(the pretrained encoder's parameters, the rest): trained at different rates, the encoder frozen at first."""
        encoder = list(self.encoder.parameters())
        ids = {id(parameter) for parameter in encoder}
        return encoder, [parameter for parameter in self.parameters() if id(parameter) not in ids]


def _decoder_block(norm: str, in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False), _norm(norm, out_channels), nn.ReLU())


_LAB = LabNormalization()  # the networks' scaling of L (data.NORMALIZATION)


def neutral_gray(l_norm: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) normalized L -> the sRGB gray in [0,1] of that lightness (a = b = 0): the grayscale photo."""
    lab = torch.cat([_LAB.denormalize_l(l_norm), torch.zeros_like(l_norm).expand(-1, 2, -1, -1)], dim=1)
    return lab_to_rgb(lab)[:, :1]


class PatchGANDiscriminator(nn.Module):
    """pix2pix's PatchGAN: `n_layers` stride-2 convs, then two stride-1 convs; a map of logits (no sigmoid).

    Each logit judges one overlapping patch (70×70 for n_layers=3). Any H×W >= 32 (for n_layers=3). With norm
    "spectral", every conv's weight is spectrally normalized (Miyato et al. 2018) and there are no norm layers.
    """

    def __init__(self, cfg: DiscriminatorParams) -> None:
        super().__init__()
        spectral = cfg.norm == "spectral"
        conv = _spectral_conv if spectral else nn.Conv2d
        uses_bias = cfg.norm != "batch"  # batch norm has its own shift
        channels = [_filters(cfg.base_filters, level) for level in range(cfg.n_layers + 1)]
        layers: list[nn.Module] = [conv(L_CHANNELS + AB_CHANNELS, channels[0], 4, 2, 1), nn.LeakyReLU(0.2)]
        for level in range(1, cfg.n_layers + 1):
            stride = 2 if level < cfg.n_layers else 1
            layers += [
                conv(channels[level - 1], channels[level], 4, stride, 1, bias=uses_bias),
                nn.Identity() if spectral else _norm(cfg.norm, channels[level]),
                nn.LeakyReLU(0.2),
            ]
        layers.append(conv(channels[-1], 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _spectral_conv(*args: int, **kwargs: bool) -> nn.Module:
    """nn.Conv2d(*args, **kwargs) whose weight is divided by its largest singular value (one power iteration a step)."""
    return nn.utils.parametrizations.spectral_norm(nn.Conv2d(*args, **kwargs))


_GENERATORS: dict[str, Callable[[GeneratorParams], nn.Module]] = {"unet": UNetGenerator, "encoder_unet": EncoderUNetGenerator}
_DISCRIMINATORS: dict[str, Callable[[DiscriminatorParams], nn.Module]] = {"patchgan": PatchGANDiscriminator}


def init_weights(net: nn.Module, std: float = 0.02) -> None:
    """pix2pix's initialisation: conv weights N(0, std), norm weights N(1, std), biases 0."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            parametrized = nn.utils.parametrize.is_parametrized(module, "weight")  # spectral norm: the raw weight
            nn.init.normal_(module.parametrizations.weight.original if parametrized else module.weight, 0.0, std)
        elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, std)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def define_generator(cfg: GeneratorParams, pretrained: bool = True) -> nn.Module:
    """The generator that `cfg.name` selects, initialised, with a pretrained encoder's weights from its package unless
    `pretrained` is False (a model file brings its own); ValueError names the choices if unknown."""
    net = _choose(_GENERATORS, cfg.name, "generator")(cfg)
    init_weights(net)
    if pretrained and isinstance(net, EncoderUNetGenerator):
        net.encoder.load_pretrained()
    return net


def define_discriminator(cfg: DiscriminatorParams) -> nn.Module:
    """The discriminator that `cfg.name` selects, initialised; ValueError names the choices if unknown."""
    net = _choose(_DISCRIMINATORS, cfg.name, "discriminator")(cfg)
    init_weights(net)
    return net


_GAN_CRITERIA: dict[str, Callable[[], nn.Module]] = {"vanilla": nn.BCEWithLogitsLoss, "lsgan": nn.MSELoss}


class GANLoss(nn.Module):
    """The adversarial loss on a map of logits: "vanilla" (BCE with logits) or "lsgan" (MSE)."""

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.criterion = _choose(_GAN_CRITERIA, mode, "GAN loss mode")()
        self.register_buffer("real_label", torch.tensor(real_label))
        self.register_buffer("fake_label", torch.tensor(fake_label))

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        label = self.real_label if target_is_real else self.fake_label
        return self.criterion(prediction, label.to(prediction.dtype).expand_as(prediction))

    def judged_real(self, prediction: torch.Tensor) -> torch.Tensor:
        """Where the discriminator's output says "real": a positive logit (vanilla), nearer the real label (lsgan)."""
        threshold = 0.0 if isinstance(self.criterion, nn.BCEWithLogitsLoss) else float(self.real_label + self.fake_label) / 2
        return prediction > threshold
