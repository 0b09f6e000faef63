"""The training data: a split's images as uint8 tensors, their normalized Lab batches, and the augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.dataset.manifests import MANIFEST, SplitFile, read_table
from pipeline.model.lab import LabNormalization, rgb_to_lab

NORMALIZATION = LabNormalization()


@dataclass
class Batch:
    """Normalized L (network input, from the grayscale x) and ab (target, from the color y)."""

    l_norm: torch.Tensor
    ab_norm: torch.Tensor


def load_split(split_root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(x as N×1×H×W uint8, y as N×3×H×W uint8, file names) of one split, in manifest order."""
    manifest = read_table(split_root / MANIFEST, SplitFile)
    files = list(manifest.loc[manifest["split"] == split, "file"])
    x = np.stack([np.asarray(Image.open(split_root / f"{split}_x" / name).convert("L")) for name in files])
    y = np.stack([np.asarray(Image.open(split_root / f"{split}_y" / name).convert("RGB")) for name in files])
    return torch.from_numpy(x)[:, None], torch.from_numpy(y).permute(0, 3, 1, 2).contiguous(), files


def to_lab_batch(x: torch.Tensor, y: torch.Tensor) -> Batch:
    """uint8 gray x and color y (on any device) to the networks' normalized L and ab."""
    gray = x.float().div(255).expand(-1, 3, -1, -1)
    l_norm = NORMALIZATION.normalize_l(rgb_to_lab(gray)[:, :1])
    _, ab_norm = NORMALIZATION.split(y.float().div(255))
    return Batch(l_norm, ab_norm)


def augment(x: torch.Tensor, y: torch.Tensor, crop: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One random square crop for the batch (when `crop` is smaller than the images) and per-image flips."""
    height, width = x.shape[-2:]
    if 0 < crop < min(height, width):
        top = int(torch.randint(height - crop + 1, (1,), generator=rng))
        left = int(torch.randint(width - crop + 1, (1,), generator=rng))
        x, y = x[..., top : top + crop, left : left + crop], y[..., top : top + crop, left : left + crop]
    flip = (torch.rand(x.shape[0], generator=rng) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x), torch.where(flip, y.flip(-1), y)
