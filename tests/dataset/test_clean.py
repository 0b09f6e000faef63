"""The clean stage's rules, one small hand-made file at a time, and the published folder."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.core.images import colorfulness, hamming, perceptual_hash
from pipeline.dataset.clean import NearDuplicateIndex, clean_dataset, inspect_batch
from pipeline.dataset.params import CleanParams
from pipeline.dataset.scrape import write_raw_manifest
from pipeline.dataset.sources.base import Scraped, save_raw
from pipeline.dataset.sources.synthetic import png_rgb16
from tests.images import colorful, encode

RULES = CleanParams(min_side=32)


def inspect(tmp_path: Path, data: bytes, name: str = "x.jpg", rules: CleanParams = RULES):
    row = save_raw(tmp_path / "raw", "cat", name, data, "test", "test://")
    return inspect_one(tmp_path, rules, row.file, row.category, row.sha256)


def inspect_one(tmp_path: Path, rules: CleanParams, *row: str):
    [result] = inspect_batch(tmp_path / "raw", tmp_path / "out", rules, [row])
    return result


def kept_image(tmp_path: Path, result) -> Image.Image:
    assert result.reason == "", result
    image = Image.open(tmp_path / "out" / result.file)
    image.load()
    return image


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "not_an_image"),
        (b"\x00\x01garbage" * 50, "not_an_image"),
    ],
)
def test_non_images_are_rejected_with_a_reason(tmp_path, data, reason):
    assert inspect(tmp_path, data).reason == reason


def test_html_is_named_as_such(tmp_path):
    assert "HTML" in inspect(tmp_path, b"<html><body>blocked</body></html>").detail


def test_truncated_jpeg_and_png_are_rejected(tmp_path):
    jpeg = encode(colorful(200, 150), "JPEG", quality=90)
    png = encode(colorful(200, 150), "PNG")
    assert inspect(tmp_path, jpeg[: len(jpeg) // 2], "a.jpg").reason == "truncated"
    assert inspect(tmp_path, png[: len(png) // 2], "b.png").reason in {"truncated", "corrupt"}


@pytest.mark.slow
def test_decompression_bomb_is_rejected_before_decoding(tmp_path):
    big = encode(Image.new("RGB", (4000, 3000), (200, 30, 30)), "PNG")
    result = inspect(tmp_path, big, "bomb.png", CleanParams(max_pixels=1_000_000))
    assert result.reason == "decompression_bomb"
    assert "4000x3000" in result.detail


def test_tiny_images_are_rejected(tmp_path):
    result = inspect(tmp_path, encode(colorful(40, 20), "PNG"), "t.png")
    assert result.reason == "too_small" and "40x20" in result.detail


def test_grayscale_and_nearly_grayscale_are_rejected(tmp_path):
    gray = colorful().convert("L")
    assert inspect(tmp_path, encode(gray, "JPEG"), "g.jpg").reason == "grayscale"
    assert inspect(tmp_path, encode(gray.convert("RGB"), "PNG"), "g3.png").reason == "grayscale"
    faint = np.asarray(gray.convert("RGB"), dtype=np.int16) + np.array([2, 0, -2])
    assert inspect(tmp_path, encode(Image.fromarray(faint.clip(0, 255).astype(np.uint8)), "PNG"), "f.png").reason == "grayscale"


def _toned(gray: np.ndarray, dark: tuple[int, int, int], light: tuple[int, int, int]) -> Image.Image:
    """A monochrome photo printed from `dark` to `light`: its chroma is a function of its lightness."""
    t = gray[..., None] / 255.0
    return Image.fromarray(np.round(np.array(dark) * (1 - t) + np.array(light) * t).astype(np.uint8))


def test_sepia_and_duotone_are_rejected_however_colorful(tmp_path):
    gray = np.asarray(colorful().convert("L"), dtype=np.float64)
    for name, image in {
        "sepia.jpg": _toned(gray, (0, 0, 0), (255, 217, 170)),
        "duotone.jpg": _toned(gray, (20, 30, 90), (250, 230, 150)),
    }.items():
        assert colorfulness(np.asarray(image)) > 6  # the old rule (colorfulness < 6) kept them
        assert inspect(tmp_path, encode(image, "JPEG", quality=90), name).reason == "grayscale"


def test_a_neutral_scene_with_some_real_color_is_kept(tmp_path):
    """A white car on a gray street: little colorfulness, but a blue window and a red light beside gray of the same lightness."""
    scene = np.repeat(np.asarray(colorful().convert("L"), dtype=np.float64)[..., None] * 0.5 + 100, 3, axis=2)
    scene[50:62, 10:40] += (-6, -2, 8)
    scene[20:32, 60:76] += (10, -4, -6)
    image = Image.fromarray(scene.clip(0, 255).astype(np.uint8))
    assert colorfulness(np.asarray(image)) < 6  # the old rule dropped it
    assert inspect(tmp_path, encode(image, "JPEG", quality=90), "car.jpg").reason == ""


def test_rgb_jpeg_is_kept_byte_for_byte_under_its_content_hash(tmp_path):
    data = encode(colorful(120, 90), "JPEG", quality=92)
    result = inspect(tmp_path, data, "photo.jpeg")
    assert result.reason == "" and result.file == f"cat/{result.sha256[:16]}.jpg"
    assert (tmp_path / "out" / result.file).read_bytes() == data
    assert (result.width, result.height) == (120, 90)


def test_wrong_or_missing_extension_is_decided_by_content(tmp_path):
    png = encode(colorful(), "PNG")
    assert inspect(tmp_path, png, "really_png.jpg").file.endswith(".png")
    assert inspect(tmp_path, encode(colorful(seed=1), "JPEG"), "noext").file.endswith(".jpg")


def test_rgba_is_composited_on_white(tmp_path):
    rgba = colorful(64, 64).convert("RGBA")
    alpha = Image.new("L", (64, 64), 255)
    alpha.paste(0, (0, 0, 32, 64))
    rgba.putalpha(alpha)
    image = kept_image(tmp_path, inspect(tmp_path, encode(rgba, "PNG"), "a.png"))
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255)
    assert image.getpixel((50, 5)) == rgba.getpixel((50, 5))[:3]


def test_palette_with_transparency_and_cmyk_become_rgb(tmp_path):
    palette = colorful(64, 64).quantize(16)
    palette.info["transparency"] = 0
    assert kept_image(tmp_path, inspect(tmp_path, encode(palette, "PNG", transparency=0), "p.png")).mode == "RGB"
    cmyk = kept_image(tmp_path, inspect(tmp_path, encode(colorful(64, 64, seed=3).convert("CMYK"), "JPEG"), "c.jpg"))
    assert cmyk.mode == "RGB"


def test_16_bit_color_is_scaled_not_clipped(tmp_path):
    colors = np.asarray(colorful(64, 64), dtype=np.uint16) * 257
    image = kept_image(tmp_path, inspect(tmp_path, png_rgb16(colors), "deep.png"))
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image, dtype=int) - colors // 257).max() <= 1


def test_16_bit_grayscale_is_converted_then_rejected_as_gray(tmp_path):
    gray16 = Image.fromarray(np.asarray(colorful().convert("L"), dtype=np.uint16) * 257)
    result = inspect(tmp_path, encode(gray16, "PNG"), "g16.png")
    assert result.reason == "grayscale"
    assert Image.open(tmp_path / "raw" / result.raw_file).mode.startswith("I")


def test_exif_orientation_is_applied(tmp_path):
    upright = colorful(90, 60)
    stored = upright.rotate(90, expand=True)  # what a camera writes with Orientation=6 (rotate 270 to view)
    exif = Image.Exif()
    exif[0x0112] = 6
    image = kept_image(tmp_path, inspect(tmp_path, encode(stored, "JPEG", exif=exif, quality=95), "cam.jpg"))
    assert image.size == upright.size == (90, 60)
    assert np.abs(np.asarray(image, dtype=int) - np.asarray(upright, dtype=int)).mean() < 8


def test_first_frame_of_an_animation_is_kept(tmp_path):
    frames = [colorful(64, 64, seed=s).quantize(64) for s in range(3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image = kept_image(tmp_path, inspect(tmp_path, data, "anim.gif"))
    assert image.mode == "RGB" and image.size == (64, 64)


def test_near_duplicate_index_finds_exactly_the_hashes_within_distance():
    rng = np.random.default_rng(0)
    index = NearDuplicateIndex(max_distance=4)
    stored = [int(v) for v in rng.integers(0, 2**63, 200, dtype=np.int64)]
    for i, value in enumerate(stored):
        index.add(value, f"f{i}")
    for i, value in enumerate(stored[:50]):
        flipped = value
        for bit in rng.choice(64, size=4, replace=False):
            flipped ^= 1 << int(bit)
        assert index.find(flipped) == (f"f{i}", 4)
        far = value
        for bit in rng.choice(64, size=12, replace=False):
            far ^= 1 << int(bit)
        assert index.find(far) is None or index.find(far)[0] != f"f{i}"


def _striped(horizontal: bool) -> Image.Image:
    """32 px: one smooth colored layout under 2-px stripes, which the 8×8 lowest frequencies of pHash do not see."""
    coarse = np.random.default_rng(2).integers(60, 200, (4, 4, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float64)
    stripes = 40.0 * (np.arange(32) // 2 % 2 * 2 - 1)
    pixels = base + (stripes[:, None, None] if horizontal else stripes[None, :, None])
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def test_small_near_duplicates_need_alike_thumbnails_not_just_a_close_phash(tmp_path):
    a, b = _striped(True), _striped(False)
    assert hamming(perceptual_hash(a), perceptual_hash(b)) <= 4  # the old rule paired two different pictures
    photo = colorful(32, 32, seed=4)
    files = {
        "sky/a.png": encode(a, "PNG"),
        "sky/b.png": encode(b, "PNG"),
        "sky/photo.png": encode(photo, "PNG"),
        "sky/photo_again.jpg": encode(photo.resize((36, 36), Image.Resampling.LANCZOS), "JPEG", quality=70),
    }
    clean_dataset(_raw_folder(tmp_path, files), tmp_path / "clean", RULES)
    rejected = pd.read_csv(tmp_path / "clean" / "rejected.csv").set_index("file")
    assert list(rejected.index) == ["sky/photo_again.jpg"]
    assert rejected.loc["sky/photo_again.jpg", "reason"] == "near_duplicate"


def _raw_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "raw"
    rows = [save_raw(root, name.split("/")[0], name.split("/")[1], data, "test", f"test://{name}") for name, data in files.items()]
    write_raw_manifest(root, [Scraped(rows)])
    return root


def test_clean_dataset_dedups_within_and_across_categories_and_reports(tmp_path):
    a = encode(colorful(seed=1), "JPEG", quality=90)
    near_a = encode(colorful(seed=1).resize((93, 78)), "JPEG", quality=75)
    files = {
        "beach/a.jpg": a,
        "beach/a_copy.jpg": a,
        "beach/broken.jpg": a[:200],
        "forest/b.jpg": encode(colorful(seed=2), "JPEG"),
        "forest/a_again.jpg": near_a,
        "forest/page.jpg": b"<html>nope</html>",
    }
    raw = _raw_folder(tmp_path, files)
    summary = clean_dataset(raw, tmp_path / "clean", RULES)
    clean = tmp_path / "clean"
    manifest = pd.read_csv(clean / "manifest.csv")
    rejected = pd.read_csv(clean / "rejected.csv").set_index("file")
    assert sorted(manifest["raw_file"]) == ["beach/a.jpg", "forest/b.jpg"]
    assert rejected.loc["beach/a_copy.jpg", "reason"] == "duplicate"
    assert rejected.loc["forest/a_again.jpg", "reason"] == "near_duplicate"
    assert "beach/a.jpg" in rejected.loc["forest/a_again.jpg", "detail"]
    assert rejected.loc["beach/broken.jpg", "reason"] == "truncated"
    assert rejected.loc["forest/page.jpg", "reason"] == "not_an_image"
    assert sorted(str(p.relative_to(clean)) for p in clean.rglob("*.jpg")) == sorted(manifest["file"])
    assert json.loads((clean / "summary.json").read_text()) == {"kept": 2, "rejected": 4}
    assert summary.kept == 2 and summary.rejected_by_reason == {"duplicate": 1, "near_duplicate": 1, "not_an_image": 1, "truncated": 1}
    assert summary.per_category["forest"] == {"kept": 1, "rejected": 2, "duplicate": 0, "near_duplicate": 1, "not_an_image": 1, "truncated": 0}
    assert pd.read_csv(clean / "counts.csv").to_dict("records") == [{"category": name, **counts} for name, counts in summary.per_category.items()]
    assert not (tmp_path / ".clean.partial").exists()


def test_clean_dataset_names_are_stable_across_runs(tmp_path):
    raw = _raw_folder(tmp_path, {f"sky/{i}.png": encode(colorful(seed=i), "PNG") for i in range(4)})
    clean_dataset(raw, tmp_path / "one", RULES)
    clean_dataset(raw, tmp_path / "two", RULES)
    one, two = (pd.read_csv(tmp_path / d / "manifest.csv") for d in ("one", "two"))
    assert one.equals(two)
    for file in one["file"]:
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes()


def test_failure_midway_leaves_no_output(tmp_path, monkeypatch):
    raw = _raw_folder(tmp_path, {f"sky/{i}.png": encode(colorful(seed=i), "PNG") for i in range(3)})
    (raw / "sky/1.png").unlink()  # the manifest names a file that is gone: an I/O error, not an image problem
    with pytest.raises(FileNotFoundError):
        clean_dataset(raw, tmp_path / "clean", RULES)
    assert not (tmp_path / "clean").exists()


@pytest.mark.slow
def test_a_large_file_that_is_not_an_image_is_described_from_its_first_bytes_only(tmp_path):
    (tmp_path / "raw" / "cat").mkdir(parents=True)
    with open(tmp_path / "raw" / "cat" / "page.jpg", "wb") as handle:
        handle.write(b"<html><body>" + b"x" * (64 * 1024 * 1024) + b"</body></html>")
    tracemalloc.start()
    result = inspect_one(tmp_path, RULES, "cat/page.jpg", "cat", "0" * 64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (result.reason, result.detail) == ("not_an_image", "HTML page, not an image")
    assert peak < 1024 * 1024  # the head, not the 64 MB


@pytest.mark.slow
def test_a_kept_jpeg_is_copied_as_a_stream(tmp_path):
    data = encode(colorful(6000, 4000), "JPEG", quality=95)
    row = save_raw(tmp_path / "raw", "cat", "big.jpg", data, "test", "test://")
    tracemalloc.start()
    result = inspect_one(tmp_path, RULES, row.file, row.category, row.sha256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (tmp_path / "out" / result.file).read_bytes() == data
    assert peak < len(data) / 2  # the decoder's buffers live outside Python's allocator; the copy never holds the file
