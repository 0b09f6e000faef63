"""The trained generator as one self-describing file, and the Colorizer that applies it to any image."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import ValidationError
from torch import nn

from pipeline.core.errors import PipelineError, one_line
from pipeline.core.fsutil import atomic_write_bytes
from pipeline.core.images import to_rgb
from pipeline.core.schema import describe_problems
from pipeline.model.devices import autocast, resolve_device
from pipeline.model.lab import LabNormalization, to_uint8
from pipeline.model.networks import AB_CHANNELS, L_CHANNELS, define_generator
from pipeline.model.params import GeneratorParams
from pipeline.model.weights import load_weights

MODEL_FORMAT = "colorize-pipeline/generator/2"  # "generator" holds train.generator's params
_FORMAT_1 = "colorize-pipeline/generator/1"  # read too: its "generator" also names the channels, always L in, ab out
STRIP_PIXELS = 1 << 18  # output pixels (all images of a batch together) converted from Lab at a time: ~100 MB of work
_MODEL_INPUT_FILTER = Image.Resampling.LANCZOS  # as the resize stage makes the training images


def save_generator(
    path: Path, net: nn.Module, config: GeneratorParams, normalization: LabNormalization, image_size: int, info: dict[str, Any]
) -> None:
    """Weights plus everything needed to rebuild and use them (no params.yaml needed), written atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "generator": config.model_dump(),
        "normalization": asdict(normalization),
        "image_size": image_size,
        "info": info,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@dataclass
class Colorizer:
    """A generator ready to colorize: predicts ab at model resolution, keeps the input's own full-resolution L."""

    net: nn.Module
    normalization: LabNormalization
    image_size: int
    device: torch.device
    info: dict[str, Any]

    @classmethod
    def load(cls, path: Path, device: torch.device | str = "auto") -> Colorizer:
        """The generator saved at `path`, on `device`. Never runs code from the file (weights only); a file that is not a
        generator of this pipeline, or whose weights do not fit its architecture, is a ValueError that says which."""
        try:
            payload = load_weights(path)
        except ValueError as exc:
            raise ValueError(f"{path} is not a generator saved by this pipeline ({exc})") from None
        if not isinstance(payload, dict) or payload.get("format") not in (MODEL_FORMAT, _FORMAT_1):
            raise ValueError(f"{path} is not a generator saved by this pipeline (expected format {MODEL_FORMAT})")
        try:
            net = define_generator(_generator_params(payload), pretrained=False)
            net.load_state_dict(payload["state_dict"])
            normalization = LabNormalization(**payload["normalization"])
            image_size, info = int(payload["image_size"]), dict(payload["info"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            # load_state_dict lists every missing and unexpected key over many lines: one line says it
            reason = f"generator.{describe_problems(exc)}" if isinstance(exc, ValidationError) else one_line(str(exc))
            raise ValueError(f"{path}: the weights do not fit the architecture the file describes ({reason})") from None
        target = device if isinstance(device, torch.device) else resolve_device(device, "device")
        return cls(net.to(target).eval(), normalization, image_size, target, info)

    @torch.no_grad()
    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Normalized ab (B,2,H,W) for normalized L (B,1,H,W), in eval mode, autocast on CUDA."""
        with autocast(self.device):
            return self.net(l_norm.to(self.device)).float()

    def colorize(self, image: Image.Image) -> Image.Image:
        """RGB at the input's full resolution: any mode (a color photo counts as its luminance)."""
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images: list[Image.Image]) -> list[Image.Image]:
        """`colorize` for each image; images of one size go through the network in one call.

        The network sees each image scaled to model resolution; its ab is then upsampled and joined with the full-resolution
        L in strips of rows, so the memory used beyond the input and output images does not grow with their size.
        """
        if len({image.size for image in images}) > 1:
            return [self.colorize(image) for image in images]
        rgbs = [_as_rgb(image) for image in images]
        width, height = rgbs[0].size
        small = self._model_size(width, height)
        l_small, _ = self.normalization.split(_float_rgb([rgb.resize(small, _MODEL_INPUT_FILTER, reducing_gap=3.0) for rgb in rgbs]))
        ab_small = self.predict_ab(l_small).cpu()
        outputs = [Image.new("RGB", (width, height)) for _ in rgbs]
        for top, bottom in _strips(height, len(rgbs) * width):
            l_norm, _ = self.normalization.split(_float_rgb([rgb.crop((0, top, width, bottom)) for rgb in rgbs]))
            rgb_out = self.normalization.to_rgb(l_norm, _upsampled_rows(ab_small, (height, width), top, bottom))
            for output, pixels in zip(outputs, to_uint8(rgb_out)):
                output.paste(Image.fromarray(pixels, "RGB"), (0, top))
        return outputs

    def _model_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the network sees an image of this size at: the shorter side `image_size`, the aspect kept."""
        scale = self.image_size / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))


def _generator_params(payload: dict[str, Any]) -> GeneratorParams:
    """The generator's params a model file holds (format 1 also named its channels: L in, ab out)."""
    spec = dict(payload["generator"])
    if payload["format"] == _FORMAT_1:
        channels = (spec.pop("in_channels", L_CHANNELS), spec.pop("out_channels", AB_CHANNELS))
        if channels != (L_CHANNELS, AB_CHANNELS):
            raise ValueError(f"a generator of {channels[0]} to {channels[1]} channels, not L to ab")
    return GeneratorParams.model_validate(spec)


def load_colorizer(path: Path, device: str, setting: str) -> Colorizer:
    """The generator saved at `path`, on `device` (`auto` or a device name, given by `setting`: a params key or a flag).
    A missing file, a device this machine lacks, or a file that is not a generator of this pipeline is a PipelineError
    that names it and says why."""
    target = resolve_device(device, setting)
    if not path.is_file():
        raise PipelineError(f"model {path} not found: train one first (dvc repro)")
    try:
        return Colorizer.load(path, target)
    except (OSError, ValueError) as exc:
        raise PipelineError(f"cannot load model {path}: {exc}") from None


def _as_rgb(image: Image.Image) -> Image.Image:
    """`image` itself when it is plain 8-bit RGB already (no full-size copy), else `to_rgb`'s conversion."""
    return image if image.mode == "RGB" and "transparency" not in image.info else to_rgb(image)


def _float_rgb(images: list[Image.Image]) -> torch.Tensor:
    """(B,3,H,W) float32 in [0,1] of same-size RGB images."""
    return torch.stack([torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1) for image in images])


def _strips(height: int, row_pixels: int) -> list[tuple[int, int]]:
    """(top, bottom) row ranges covering `height` rows, each at most STRIP_PIXELS pixels (one row at least)."""
    rows = max(1, STRIP_PIXELS // row_pixels)
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def _upsampled_rows(ab: torch.Tensor, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows top:bottom of `F.interpolate(ab, size, mode="bilinear", align_corners=False)`, without the rest: the source
    rows each output row lies between are interpolated along the width, then blended as that would blend them (equal
    up to float32 rounding: PyTorch's kernel may fuse the blend's multiply-add)."""
    height, width = size
    above, below, weight = _source_rows(ab.shape[-2], height, top, bottom)

    def along_width(rows: torch.Tensor) -> torch.Tensor:
        return F.interpolate(ab[:, :, rows], size=(len(rows), width), mode="bilinear", align_corners=False)

    below_weight = weight[:, None]  # one per row, the same along the width
    return along_width(above) * (1 - below_weight) + along_width(below) * below_weight


def _source_rows(source_height: int, height: int, top: int, bottom: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For output rows top:bottom of a bilinear resize from `source_height` to `height` rows (align_corners=False): the
    source row above and below each, and the weight of the one below, as PyTorch computes them: a float32 scale, and the
    position rounded to float32 once (as its fused multiply-add does; exact in float64 before that)."""
    scale = (torch.tensor(source_height, dtype=torch.float32) / height).double()
    position = ((torch.arange(top, bottom, dtype=torch.float64) + 0.5) * scale - 0.5).float().clamp(min=0)
    above = position.long().clamp(max=source_height - 1)
    below = (above + 1).clamp(max=source_height - 1)
    return above, below, (position - above).clamp(0, 1)

