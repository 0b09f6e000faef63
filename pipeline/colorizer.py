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
from torch import nn

from pipeline.fsutil import atomic_write_bytes
from pipeline.images import to_rgb
from pipeline.lab import LabNormalization
from pipeline.networks import GeneratorConfig, define_generator

MODEL_FORMAT = "colorize-pipeline/generator/1"


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA, then Apple's MPS, then CPU; otherwise the named device."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def save_generator(
    path: Path, net: nn.Module, config: GeneratorConfig, normalization: LabNormalization, image_size: int, info: dict[str, Any]
) -> None:
    """Weights plus everything needed to rebuild and use them (no params.yaml needed), written atomically."""
    payload = {
        "format": MODEL_FORMAT,
        "generator": asdict(config),
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
    def load(cls, path: Path, device: str = "auto") -> Colorizer:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for other bytes
            raise ValueError(f"{path} is not a generator saved by this pipeline ({type(exc).__name__})") from exc
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a generator saved by this pipeline (expected format {MODEL_FORMAT})")
        net = define_generator(GeneratorConfig(**payload["generator"]))
        net.load_state_dict(payload["state_dict"])
        target = pick_device(device)
        return cls(net.to(target).eval(), LabNormalization(**payload["normalization"]), payload["image_size"], target, payload["info"])

    @torch.no_grad()
    def predict_ab(self, l_norm: torch.Tensor) -> torch.Tensor:
        """Normalized ab (B,2,H,W) for normalized L (B,1,H,W), in eval mode, autocast on CUDA."""
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.net(l_norm.to(self.device)).float()

    def colorize(self, image: Image.Image) -> Image.Image:
        """RGB at the input's full resolution: any mode (a color photo counts as its luminance)."""
        return self.colorize_batch([image])[0]

    def colorize_batch(self, images: list[Image.Image]) -> list[Image.Image]:
        """`colorize` for each image; images of one size go through the network in one call."""
        if len({image.size for image in images}) > 1:
            return [self.colorize(image) for image in images]
        rgb = torch.stack([torch.from_numpy(np.asarray(to_rgb(image), dtype=np.float32) / 255).permute(2, 0, 1) for image in images])
        l_full, _ = self.normalization.split(rgb)
        height, width = l_full.shape[-2:]
        scale = self.image_size / min(height, width)
        small = (max(1, round(height * scale)), max(1, round(width * scale)))
        l_small = F.interpolate(l_full, size=small, mode="bilinear", antialias=True, align_corners=False)
        ab = F.interpolate(self.predict_ab(l_small).cpu(), size=(height, width), mode="bilinear", align_corners=False)
        out = np.clip(self.normalization.to_rgb(l_full, ab).permute(0, 2, 3, 1).numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
        return [Image.fromarray(pixels, "RGB") for pixels in out]
