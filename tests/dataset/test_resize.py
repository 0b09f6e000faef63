"""The resize stage: output size and mode, the three modes' geometry, and quality of the fast JPEG path."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.dataset.manifests import MANIFEST, CleanFile, write_table
from pipeline.dataset.params import ResizeParams
from pipeline.dataset.resize import resize_dataset, resize_image
from tests.images import colorful, encode


def opened(image: Image.Image, fmt: str = "PNG") -> Image.Image:
    return Image.open(io.BytesIO(encode(image, fmt, quality=95)))


@pytest.mark.parametrize("mode", ["center_crop", "pad", "squash"])
@pytest.mark.parametrize("size", [200, 33])
def test_every_mode_gives_a_square_rgb_image(mode, size):
    out = resize_image(opened(colorful(301, 157)), size, mode)
    assert out.size == (size, size) and out.mode == "RGB"


def test_center_crop_keeps_the_middle():
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))
    out = np.asarray(resize_image(opened(image), 50, "center_crop"))
    assert (out[5:45, 5:45] == [0, 0, 255]).all()


def test_pad_keeps_everything_and_pads_with_black():
    out = np.asarray(resize_image(opened(Image.new("RGB", (200, 100), (0, 200, 0))), 100, "pad"))
    assert (out[:20] == 0).all() and (out[-20:] == 0).all()
    assert (np.abs(out[30:70].astype(int) - [0, 200, 0]) <= 1).all()


def test_squash_distorts_the_aspect_ratio():
    image = Image.new("RGB", (400, 100), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 200, 100))
    out = np.asarray(resize_image(opened(image), 100, "squash"))
    assert out[50, 10].min() > 250 and out[50, 90].max() < 5


@pytest.mark.slow
def test_reduced_scale_jpeg_decoding_matches_a_full_decode():
    photo = colorful(1600, 1200, seed=4)
    fast = np.asarray(resize_image(opened(photo, "JPEG"), 200, "center_crop"), dtype=float)
    full = opened(photo, "JPEG").convert("RGB")
    reference = np.asarray(full.resize((200, 200), Image.Resampling.LANCZOS, box=(200, 0, 1400, 1200)), dtype=float)
    assert np.abs(fast - reference).mean() < 2.0


def test_resize_dataset_writes_pngs_and_a_manifest(tmp_path):
    clean = tmp_path / "clean"
    (clean / "sky").mkdir(parents=True)
    colorful(120, 90, seed=1).save(clean / "sky" / "aaaa.jpg", "JPEG")
    colorful(90, 120, seed=2).save(clean / "sky" / "bbbb.png")
    write_table(clean / MANIFEST, CleanFile, [{"file": "sky/aaaa.jpg", "category": "sky"}, {"file": "sky/bbbb.png", "category": "sky"}])
    assert resize_dataset(clean, tmp_path / "resized", ResizeParams(size=64)).images == 2
    manifest = pd.read_csv(tmp_path / "resized" / "manifest.csv")
    assert list(manifest["file"]) == ["sky/aaaa.png", "sky/bbbb.png"]
    assert list(manifest["clean_file"]) == ["sky/aaaa.jpg", "sky/bbbb.png"]
    for file in manifest["file"]:
        image = Image.open(tmp_path / "resized" / file)
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (64, 64))
