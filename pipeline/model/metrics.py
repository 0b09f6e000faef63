"""Colorization metrics of an output image against its ground truth, the grayscale baseline, and their summary."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypedDict

import numpy as np
import pandas as pd
from skimage.color import lab2rgb, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.core.images import color_spread, colorfulness

PSNR_CAP = 100.0  # dB; identical images have an infinite PSNR, which would make every mean infinite
_AB_TOLERANCE = 2.2  # Nazeri et al.: a and b may differ by 2.2·ε where L may differ by ε
_DECIMALS = 4


@dataclass(frozen=True)
class ImageMetrics:
    """The metrics of one colorized image; Lab values are CIELAB (D65) as skimage computes them."""

    psnr: float  # dB on 8-bit RGB, capped at PSNR_CAP
    ssim: float  # structural similarity of the RGB images
    ab_error: float  # mean per-pixel Euclidean distance in the ab plane
    accuracy_eps2: float  # share of pixels within the Nazeri et al. tolerance at ε = 2
    accuracy_eps5: float  # same at ε = 5
    colorfulness: float  # Hasler & Süsstrunk colorfulness of the output
    colorfulness_truth: float  # same for the ground truth
    color_spread: float  # its spread term alone: how much the colour varies (a uniform tint has none)
    color_spread_truth: float  # same for the ground truth


METRICS = tuple(field.name for field in fields(ImageMetrics))


def _check_pair(output: np.ndarray, truth: np.ndarray) -> None:
    if output.shape != truth.shape or output.ndim != 3 or output.shape[2] != 3:
        raise ValueError(f"expected two H×W×3 images of the same shape, got output {output.shape} and truth {truth.shape}")
    if output.dtype != np.uint8 or truth.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got output {output.dtype} and truth {truth.dtype}")


def capped_psnr(output: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB with data_range 255, capped at PSNR_CAP (100 dB) so that identical images average finitely."""
    with np.errstate(divide="ignore"):
        value = peak_signal_noise_ratio(truth, output, data_range=255)
    return float(min(value, PSNR_CAP))


def lab_accuracy(delta: np.ndarray, eps: float) -> float:
    """Nazeri et al. (2018) pixel accuracy: the share of pixels with |ΔL| ≤ ε, |Δa| ≤ 2.2ε and |Δb| ≤ 2.2ε.

    `delta` is the H×W×3 CIELAB difference (L in 0..100, a and b in skimage's units).
    """
    tolerance = np.array([eps, _AB_TOLERANCE * eps, _AB_TOLERANCE * eps])
    return float(np.all(np.abs(delta) <= tolerance, axis=-1).mean())


def image_metrics(output: np.ndarray, truth: np.ndarray) -> ImageMetrics:
    """All metrics of `output` against `truth`, both H×W×3 uint8 RGB of the same shape (at least 7×7, for SSIM).

    SSIM and CIELAB run on float32 copies of the 8-bit values: about 3× faster than skimage's float64 default,
    and equal to it within 1e-4 (Lab units) and 1e-7 (SSIM).
    """
    _check_pair(output, truth)
    output32, truth32 = output.astype(np.float32), truth.astype(np.float32)
    delta = rgb2lab(output32 / 255) - rgb2lab(truth32 / 255)
    return ImageMetrics(
        psnr=capped_psnr(output, truth),
        ssim=float(structural_similarity(output32, truth32, channel_axis=-1, data_range=255)),
        ab_error=float(np.hypot(delta[..., 1], delta[..., 2]).mean()),
        accuracy_eps2=lab_accuracy(delta, 2),
        accuracy_eps5=lab_accuracy(delta, 5),
        colorfulness=colorfulness(output),
        colorfulness_truth=colorfulness(truth),
        color_spread=color_spread(output),
        color_spread_truth=color_spread(truth),
    )


def grayscale_baseline(truth: np.ndarray) -> np.ndarray:
    """The baseline colorization: the truth's CIELAB L with a = b = 0, as H×W×3 uint8 RGB."""
    return tint_baseline(truth, (0.0, 0.0))


def tint_baseline(truth: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    """The truth's CIELAB L with one colour `ab` on every pixel (the training photos' median: the tint baseline), as
    H×W×3 uint8 RGB. A model whose colour does not follow what is in the photo does no better than this."""
    lab = rgb2lab(truth)
    lab[..., 1], lab[..., 2] = ab
    return np.round(np.clip(lab2rgb(lab), 0.0, 1.0) * 255).astype(np.uint8)


class MeanStd(TypedDict):
    mean: float
    std: float


Summary = dict[str, MeanStd]  # metric -> its mean and std over a set of images


def _mean_std(rows: pd.DataFrame) -> Summary:
    """{metric: {"mean", "std"}} with the population standard deviation (0 for a single image), rounded."""
    values = rows[list(METRICS)].astype(float)
    means, stds = values.mean(), values.std(ddof=0)
    return {m: {"mean": round(float(means[m]), _DECIMALS), "std": round(float(stds[m]), _DECIMALS)} for m in METRICS}


def summarize(rows: pd.DataFrame, by: str | None = None) -> Summary | dict[str, Summary]:
    """Mean and std of each metric over `rows` (one per image), overall or per value of column `by`; JSON-serialisable."""
    missing = [m for m in METRICS if m not in rows.columns]
    if missing:
        raise ValueError(f"rows lack the metric columns {missing}")
    if by is None:
        return _mean_std(rows)
    return {str(group): _mean_std(group_rows) for group, group_rows in rows.groupby(by, sort=True)}
