"""Colorization metrics on hand-made images whose values are known: PSNR, SSIM, ab error, accuracy, colorfulness, summary."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from skimage.color import lab2rgb, rgb2lab

from pipeline.model.metrics import METRICS, PSNR_CAP, ImageMetrics, grayscale_baseline, image_metrics, summarize
from tests.images import colorful


def colorful_array(side: int = 48, seed: int = 0) -> np.ndarray:
    return np.asarray(colorful(side, side, seed))


def uniform_lab(lab: tuple[float, float, float], height: int = 30, width: int = 10) -> np.ndarray:
    """A uniform uint8 RGB image of one CIELAB color (exact up to the 8-bit rounding, ≤ ~0.5 Lab units)."""
    rgb = lab2rgb(np.array(lab, dtype=np.float64).reshape(1, 1, 3))
    pixel = np.round(rgb * 255).astype(np.uint8)
    return np.tile(pixel, (height, width, 1))


def srgb_lightness(value: int) -> float:
    """CIELAB L of the gray (value, value, value), from the sRGB and CIE formulas (independent of skimage)."""
    c = value / 255
    y = ((c + 0.055) / 1.055) ** 2.4 if c > 0.04045 else c / 12.92
    f = y ** (1 / 3) if y > (6 / 29) ** 3 else y / (3 * (6 / 29) ** 2) + 4 / 29
    return 116 * f - 16


def test_identical_images_score_perfectly():
    image = colorful_array()
    m = image_metrics(image, image.copy())
    assert m.psnr == PSNR_CAP == 100.0
    assert m.ssim == pytest.approx(1.0)
    assert m.ab_error == 0.0
    assert m.accuracy_eps2 == m.accuracy_eps5 == 1.0
    assert m.colorfulness == m.colorfulness_truth > 0


def test_uniform_gray_offset_gives_the_textbook_psnr_and_a_lightness_only_error():
    truth = np.full((20, 20, 3), 128, np.uint8)
    m = image_metrics(truth + 10, truth)
    assert m.psnr == pytest.approx(20 * math.log10(255 / 10), abs=1e-6)
    delta_lightness = srgb_lightness(138) - srgb_lightness(128)
    assert 2 < delta_lightness < 5  # so the pixel fails at ε = 2 and passes at ε = 5
    assert m.accuracy_eps2 == 0.0 and m.accuracy_eps5 == 1.0
    assert m.ab_error == pytest.approx(0.0, abs=1e-3)  # grays stay on the L axis


def test_known_ab_shifts_give_the_ab_error_and_the_accuracy_at_each_epsilon():
    base = (50.0, 10.0, 10.0)
    truth = np.hstack([uniform_lab(base)] * 3)
    output = np.hstack(
        [
            uniform_lab((50.0, 13.0, 10.0)),  # Δa = 3: within 2.2·2 = 4.4, so right at both ε
            uniform_lab((50.0, 10.0, 18.0)),  # Δb = 8: outside 4.4, within 2.2·5 = 11
            uniform_lab((50.0, -5.0, 10.0)),  # Δa = -15: outside both
        ]
    )
    m = image_metrics(output, truth)
    assert m.ab_error == pytest.approx((3 + 8 + 15) / 3, abs=0.5)
    assert m.accuracy_eps2 == pytest.approx(1 / 3)
    assert m.accuracy_eps5 == pytest.approx(2 / 3)


def test_half_correct_image_has_half_accuracy():
    truth = colorful_array()
    output = truth.copy()
    right = truth[:, 24:]
    output[:, 24:] = np.where(right > 127, 0, 255)  # every channel moves by at least 128
    m = image_metrics(output, truth)
    assert m.accuracy_eps2 == pytest.approx(0.5, abs=0.02)
    assert m.accuracy_eps5 == pytest.approx(0.5, abs=0.02)


def test_grayscale_baseline_keeps_lightness_and_drops_color():
    truth = colorful_array()
    baseline = grayscale_baseline(truth)
    assert baseline.shape == truth.shape and baseline.dtype == np.uint8
    lab, truth_lab = rgb2lab(baseline), rgb2lab(truth)
    assert np.abs(lab[..., 1:]).max() < 1
    assert np.abs(lab[..., 0] - truth_lab[..., 0]).max() <= 1
    assert image_metrics(baseline, truth).colorfulness == pytest.approx(0.0, abs=1.0)


def test_grayscale_baseline_scores_worse_than_the_truth():
    truth = colorful_array()
    perfect = image_metrics(truth, truth)
    baseline = image_metrics(grayscale_baseline(truth), truth)
    assert baseline.accuracy_eps2 < perfect.accuracy_eps2
    assert baseline.accuracy_eps5 < perfect.accuracy_eps5
    assert baseline.ab_error > perfect.ab_error + 10


def test_colorfulness_is_zero_for_gray_and_large_for_a_red_green_checkerboard():
    gray = np.full((16, 16, 3), 90, np.uint8)
    checker = np.zeros_like(gray)
    red = (np.indices((16, 16)).sum(axis=0) % 2).astype(bool)
    checker[red] = (255, 0, 0)
    checker[~red] = (0, 255, 0)
    m = image_metrics(checker, gray)
    assert m.colorfulness_truth == 0.0
    # rg = ±255 (std 255, mean 0), yb = 127.5 everywhere (std 0): 255 + 0.3·127.5
    assert m.colorfulness == pytest.approx(255 + 0.3 * 127.5)


@pytest.mark.parametrize(
    ("output_shape", "truth_shape"),
    [((8, 8, 3), (8, 9, 3)), ((8, 8), (8, 8)), ((8, 8, 4), (8, 8, 4))],
)
def test_bad_shapes_raise_naming_both(output_shape, truth_shape):
    output, truth = np.zeros(output_shape, np.uint8), np.zeros(truth_shape, np.uint8)
    with pytest.raises(ValueError, match=re.escape(str(output_shape)) + ".*" + re.escape(str(truth_shape))):
        image_metrics(output, truth)


def test_non_uint8_images_are_refused():
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="float64"):
        image_metrics(image.astype(np.float64), image)


def metrics_row(value: float, category: str) -> dict:
    """A per-image row whose every metric is `value`."""
    return {**asdict(ImageMetrics(*[value] * len(METRICS))), "category": category}


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame([metrics_row(v, c) for v, c in [(1.0, "cat"), (2.0, "cat"), (4.0, "dog"), (2 / 3, "dog")]])


def test_summarize_overall(rows):
    summary = summarize(rows)
    values = np.array([1.0, 2.0, 4.0, 2 / 3])
    expected = {"mean": round(values.mean(), 4), "std": round(values.std(), 4)}
    assert summary == {metric: expected for metric in METRICS}
    assert summary["psnr"] == {"mean": 1.9167, "std": 1.299}
    assert json.loads(json.dumps(summary)) == summary


def test_summarize_by_category(rows):
    summary = summarize(rows, by="category")
    assert list(summary) == ["cat", "dog"]
    assert summary["cat"]["ssim"] == {"mean": 1.5, "std": 0.5}
    assert summary["dog"]["ab_error"] == {"mean": 2.3333, "std": 1.6667}
    assert json.loads(json.dumps(summary)) == summary


def test_summarize_of_one_image_has_zero_std(rows):
    assert summarize(rows.head(1))["accuracy_eps5"] == {"mean": 1.0, "std": 0.0}


def test_summarize_needs_the_metric_columns(rows):
    with pytest.raises(ValueError, match="colorfulness_truth"):
        summarize(rows.drop(columns="colorfulness_truth"))
