"""CIELAB in torch: agreement with scikit-image, round trips, neutral grays, finite gradients, normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color

from pipeline.model.lab import LabNormalization, lab_to_rgb, rgb_to_lab

D65 = np.array([0.95047, 1.0, 1.08883])


def random_rgb(dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    """A (3,3,17,19) batch of random colours that includes exact black, white and the pure primaries."""
    rgb = torch.rand(3, 3, 17, 19, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rgb[0, :, 0, :8] = torch.tensor([[0, 1, 1, 0, 0, 1, 1, 0], [0, 1, 0, 1, 0, 1, 0, 1], [0, 1, 0, 0, 1, 0, 1, 1]])
    return rgb.to(dtype)


def to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.double().numpy().transpose(0, 2, 3, 1)


def to_bchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def skimage_lab_with_exact_white(rgb: np.ndarray) -> np.ndarray:
    """skimage's Lab with its XYZ rescaled so that RGB white maps exactly onto D65 (the convention of pipeline.model.lab)."""
    xyz = color.rgb2xyz(rgb) * (D65 / color.colorconv.xyz_from_rgb.sum(axis=1))
    return color.xyz2lab(xyz)


def test_rgb_to_lab_agrees_with_skimage_formulas_float64():
    rgb = random_rgb()
    assert np.abs(rgb_to_lab(rgb).numpy() - to_bchw(skimage_lab_with_exact_white(to_hwc(rgb))).numpy()).max() < 1e-3


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-2), (torch.float32, 5e-2)])
def test_rgb_to_lab_agrees_with_skimage_rgb2lab(dtype, tolerance):
    """Plain rgb2lab differs only by its rounded white point: |a|, |b| <= 0.005 (L agrees to 1e-4)."""
    rgb = random_rgb(dtype)
    lab = rgb_to_lab(rgb).double()
    expected = to_bchw(color.rgb2lab(to_hwc(rgb)))
    assert (lab[:, 0] - expected[:, 0]).abs().max() < 1e-3
    assert (lab - expected).abs().max() < tolerance


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-3), (torch.float32, 5e-2)])
def test_lab_to_rgb_agrees_with_skimage_lab2rgb(dtype, tolerance):
    lab = color.rgb2lab(to_hwc(random_rgb()))
    rgb = lab_to_rgb(to_bchw(lab).to(dtype))
    assert rgb.dtype == dtype
    assert (rgb.double() - to_bchw(color.lab2rgb(lab))).abs().max() < tolerance


def test_round_trip_float64():
    rgb = random_rgb()
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-4


def test_ranges():
    lab = rgb_to_lab(random_rgb())
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100 + 1e-9
    assert lab[:, 1:].min() >= -128 and lab[:, 1:].max() <= 127


def test_gray_pixels_have_zero_chroma():
    gray = torch.linspace(0, 1, 256, dtype=torch.float64).reshape(1, 1, 16, 16).expand(2, 3, 16, 16)
    lab = rgb_to_lab(gray)
    assert lab[:, 1:].abs().max() < 1e-3
    assert lab[:, 0].diff(dim=-1).ge(0).all()  # L grows with the gray level


def test_zero_chroma_gives_gray_and_out_of_gamut_is_clamped():
    lab = torch.stack([torch.linspace(0, 100, 50), torch.zeros(50), torch.zeros(50)]).reshape(1, 3, 5, 10)
    rgb = lab_to_rgb(lab)
    assert (rgb - rgb[:, :1]).abs().max() < 1e-4
    wild = torch.tensor([[[[100.0]], [[127.0]], [[-128.0]]], [[[0.0]], [[-128.0]], [[127.0]]]])
    assert lab_to_rgb(wild).min() >= 0 and lab_to_rgb(wild).max() <= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_including_at_0_and_1(dtype):
    rgb = random_rgb(dtype).requires_grad_()
    rgb_to_lab(rgb).sum().backward()
    assert torch.isfinite(rgb.grad).all()
    lab = rgb_to_lab(random_rgb(dtype)).detach().requires_grad_()
    lab_to_rgb(lab).sum().backward()
    assert torch.isfinite(lab.grad).all()


def test_channels_last_and_batch_of_one():
    rgb = random_rgb(torch.float32)[:1]
    lab = rgb_to_lab(rgb.contiguous(memory_format=torch.channels_last))
    assert lab.shape == (1, 3, 17, 19) and torch.allclose(lab, rgb_to_lab(rgb))


def test_normalization_split_and_back():
    norm = LabNormalization()
    rgb = random_rgb(torch.float32)
    l_norm, ab_norm = norm.split(rgb)
    assert l_norm.shape == (3, 1, 17, 19) and ab_norm.shape == (3, 2, 17, 19)
    assert l_norm.min() >= -1 and l_norm.max() <= 1 + 1e-6 and ab_norm.abs().max() <= 128 / 110
    assert (norm.to_rgb(l_norm, ab_norm) - rgb).abs().max() < 1e-3
    L = torch.tensor([0.0, 50.0, 100.0])
    assert torch.allclose(norm.normalize_l(L), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(norm.denormalize_l(norm.normalize_l(L)), L)
    assert torch.allclose(norm.denormalize_ab(norm.normalize_ab(L)), L)
