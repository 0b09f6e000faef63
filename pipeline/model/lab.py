"""CIELAB in torch: differentiable sRGB <-> Lab (D65) on any device, and the scaling the networks see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# sRGB primaries -> CIE XYZ (D65), as in scikit-image. Each row is divided by its sum, i.e. by the white point
# (≈ 0.95047, 1.0, 1.08883) that RGB white maps to, so the product is XYZ relative to white: neutral colours give
# exactly a = b = 0 (the published white point is rounded and would leave gray at |b| ≈ 0.005).
_XYZ_FROM_RGB = torch.tensor(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ],
    dtype=torch.float64,
)
_XYZN_FROM_RGB = _XYZ_FROM_RGB / _XYZ_FROM_RGB.sum(dim=1, keepdim=True)
_RGB_FROM_XYZN = torch.linalg.inv(_XYZN_FROM_RGB)

_SRGB_THRESHOLD = 0.04045  # on the encoded value; 0.04045 / 12.92 on the linear one
_DELTA = 6 / 29  # CIE Lab's f(t) is a cube root above _DELTA**3 and linear below


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The 3×3 `matrix` applied to the channels (dim -3) of `image`."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(image), image)


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    curve = ((c.clamp(min=_SRGB_THRESHOLD) + 0.055) / 1.055) ** 2.4
    return torch.where(c > _SRGB_THRESHOLD, curve, c / 12.92)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    threshold = _SRGB_THRESHOLD / 12.92
    curve = 1.055 * c.clamp(min=threshold) ** (1 / 2.4) - 0.055
    return torch.where(c > threshold, curve, c * 12.92)


def _f(t: torch.Tensor) -> torch.Tensor:
    eps = _DELTA**3
    return torch.where(t > eps, t.clamp(min=eps) ** (1 / 3), t / (3 * _DELTA**2) + 4 / 29)


def _f_inverse(f: torch.Tensor) -> torch.Tensor:
    return torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> Lab: L in [0,100], a and b roughly in [-128,127]."""
    fx, fy, fz = _f(_apply_matrix(_XYZN_FROM_RGB, _srgb_to_linear(rgb))).unbind(dim=-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) Lab -> sRGB, clamped to [0,1] (colours outside the sRGB gamut are clipped)."""
    L, a, b = lab.unbind(dim=-3)
    fy = (L + 16) / 116
    xyzn = _f_inverse(torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3))
    linear = _apply_matrix(_RGB_FROM_XYZN, xyzn).clamp(0.0, 1.0)
    return _linear_to_srgb(linear).clamp(0.0, 1.0)


@dataclass(frozen=True)
class LabNormalization:
    """How L and ab are scaled for the networks (L -> [-1,1], ab -> about [-1,1]); saved with the model."""

    l_center: float = 50.0
    l_scale: float = 50.0
    ab_scale: float = 110.0

    def normalize_l(self, L: torch.Tensor) -> torch.Tensor:
        return (L - self.l_center) / self.l_scale

    def denormalize_l(self, l_norm: torch.Tensor) -> torch.Tensor:
        return l_norm * self.l_scale + self.l_center

    def normalize_ab(self, ab: torch.Tensor) -> torch.Tensor:
        return ab / self.ab_scale

    def denormalize_ab(self, ab_norm: torch.Tensor) -> torch.Tensor:
        return ab_norm * self.ab_scale

    def split(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,H,W) RGB in [0,1] -> (normalized L (B,1,H,W), normalized ab (B,2,H,W))."""
        lab = rgb_to_lab(rgb)
        return self.normalize_l(lab[:, :1]), self.normalize_ab(lab[:, 1:])

    def to_rgb(self, l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
        """Normalized L (B,1,H,W) and ab (B,2,H,W) -> RGB (B,3,H,W) in [0,1]."""
        return lab_to_rgb(torch.cat([self.denormalize_l(l_norm), self.denormalize_ab(ab_norm)], dim=1))


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) float RGB in [0,1], on any device -> (B,H,W,3) uint8, rounded."""
    return np.clip(rgb.permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5, 0, 255).astype(np.uint8)
