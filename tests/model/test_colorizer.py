"""The self-describing model file and the Colorizer that applies it at any size and mode."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2lab

from pipeline.core.images import to_rgb
from pipeline.model import colorizer as colorizer_module
from pipeline.model.colorizer import Colorizer, save_generator
from pipeline.model.lab import LabNormalization
from pipeline.model.networks import define_generator
from pipeline.model.params import GeneratorParams
from tests.images import colorful

CONFIG = GeneratorParams(base_filters=8, depth=3)
IMAGE_SIZE = 32


def trained_looking_generator() -> torch.nn.Module:
    """A tiny generator whose batch-norm running statistics are not the defaults, in eval mode."""
    torch.manual_seed(0)
    net = define_generator(CONFIG)
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 1, IMAGE_SIZE, IMAGE_SIZE) * 2 + 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    net = trained_looking_generator()
    path = tmp_path_factory.mktemp("model") / "generator.pt"
    save_generator(path, net, CONFIG, LabNormalization(), IMAGE_SIZE, {"epochs": 1})
    return net, path


@pytest.fixture(scope="module")
def colorizer(saved: tuple[torch.nn.Module, Path]) -> Colorizer:
    return Colorizer.load(saved[1], "cpu")


def test_round_trip_gives_identical_predictions(saved: tuple[torch.nn.Module, Path], colorizer: Colorizer) -> None:
    net, _ = saved
    l_norm = torch.rand(2, 1, 24, 40) * 2 - 1
    with torch.no_grad():
        expected = net(l_norm)
    assert torch.equal(colorizer.predict_ab(l_norm), expected)
    assert colorizer.image_size == IMAGE_SIZE
    assert colorizer.info == {"epochs": 1}
    assert colorizer.normalization == LabNormalization()
    assert not colorizer.net.training


@pytest.mark.parametrize(("channels", "loads"), [({"in_channels": 1, "out_channels": 2}, True), ({"in_channels": 3, "out_channels": 2}, False)])
def test_a_model_file_of_format_1_still_loads_when_it_maps_l_to_ab(saved, tmp_path: Path, channels: dict, loads: bool) -> None:
    """Format 1 saved the generator's settings with its channels (always L in, ab out); models in remotes have it."""
    payload = torch.load(saved[1], weights_only=True)
    old = tmp_path / "old.pt"
    torch.save({**payload, "format": "colorize-pipeline/generator/1", "generator": {**payload["generator"], **channels}}, old)
    if loads:
        assert torch.equal(Colorizer.load(old, "cpu").predict_ab(torch.zeros(1, 1, 8, 8)), Colorizer.load(saved[1], "cpu").predict_ab(torch.zeros(1, 1, 8, 8)))
    else:
        with pytest.raises(ValueError, match="a generator of 3 to 2 channels, not L to ab"):
            Colorizer.load(old, "cpu")


def _torch_bytes(payload: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"", _torch_bytes({"state_dict": {"w": torch.zeros(2)}}), _torch_bytes([1, 2, 3])],
    ids=["random-bytes", "empty", "no-format-key", "not-a-dict"],
)
def test_loading_a_file_that_is_not_a_model_raises_value_error_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generator.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        Colorizer.load(path, "cpu")


def test_colorize_keeps_the_full_resolution_luminance(colorizer: Colorizer) -> None:
    image = colorful(333, 217, seed=3)
    out = colorizer.colorize(image)
    assert out.mode == "RGB" and out.size == image.size
    l_in = rgb2lab(np.asarray(image))[..., 0]
    l_out = rgb2lab(np.asarray(out))[..., 0]
    assert np.abs(l_in - l_out).max() < 1.0


def _in_mode(mode: str, width: int, height: int) -> Image.Image:
    image = colorful(width, height, seed=1)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), dtype=np.uint16) * 257)
    return image.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK", "I;16", "P"])
@pytest.mark.parametrize("size", [(333, 217), (31, 57), (1, 9)])
def test_colorize_returns_rgb_at_the_input_size(colorizer: Colorizer, mode: str, size: tuple[int, int]) -> None:
    image = _in_mode(mode, *size)
    assert image.mode == mode
    out = colorizer.colorize(image)
    assert (out.mode, out.size) == ("RGB", size)


def _record_predictions(colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(L in, ab out) of every network call the colorizer makes from now on in this test."""
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    predict = colorizer.predict_ab

    def recording(l_norm: torch.Tensor) -> torch.Tensor:
        calls.append((l_norm, predict(l_norm)))
        return calls[-1][1]

    monkeypatch.setattr(colorizer, "predict_ab", recording)
    return calls


def _whole_image_result(image: Image.Image, ab_small: torch.Tensor) -> np.ndarray:
    """The whole-frame reference: full-resolution L and ab upsampled in one piece, joined and converted at once."""
    normalization = LabNormalization()
    l_full, _ = normalization.split(torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None])
    ab = F.interpolate(ab_small, size=l_full.shape[-2:], mode="bilinear", align_corners=False)
    rgb = normalization.to_rgb(l_full, ab)[0].permute(1, 2, 0).numpy()
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    ("size", "model_input"),
    [((57, 301), (169, 32)), ((301, 57), (32, 169)), ((20, 13), (32, 49))],
    ids=["tall", "wide", "smaller-than-the-model"],
)
def test_strips_join_into_the_whole_image_result(
    colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], model_input: tuple[int, int]
) -> None:
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", 7 * size[0])  # 7 rows a strip, so several strips
    calls = _record_predictions(colorizer, monkeypatch)
    image = colorful(*size, seed=5)

    out = colorizer.colorize(image)

    assert (out.mode, out.size) == ("RGB", size)
    ((l_small, ab_small),) = calls
    assert l_small.shape == (1, 1, *model_input)  # shorter side IMAGE_SIZE, aspect kept
    difference = np.abs(np.asarray(out, dtype=int) - _whole_image_result(image, ab_small))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # the same up to float32 rounding


def test_no_float_copy_of_a_whole_large_image_is_made(colorizer: Colorizer, monkeypatch: pytest.MonkeyPatch) -> None:
    strip_pixels = 4000
    monkeypatch.setattr(colorizer_module, "STRIP_PIXELS", strip_pixels)
    converted: list[int] = []
    for method in ("split", "to_rgb"):
        original = getattr(LabNormalization, method)

        def counting(self: LabNormalization, first: torch.Tensor, *rest: torch.Tensor, original=original) -> object:
            converted.append(first[:, 0].numel())
            return original(self, first, *rest)

        monkeypatch.setattr(LabNormalization, method, counting)

    out = colorizer.colorize(colorful(400, 300, seed=2))

    assert out.size == (400, 300)
    assert sum(converted) > 2 * 400 * 300  # every pixel went through Lab and back
    assert max(converted) <= strip_pixels


def test_an_rgb_image_with_a_transparent_color_is_composited_on_white(colorizer: Colorizer) -> None:
    image = colorful(40, 30, seed=4)
    keyed = image.copy()
    keyed.info["transparency"] = image.getpixel((0, 0))

    assert np.array_equal(np.asarray(colorizer.colorize(keyed)), np.asarray(colorizer.colorize(to_rgb(keyed))))
    assert not np.array_equal(np.asarray(colorizer.colorize(keyed)), np.asarray(colorizer.colorize(image)))
