"""The synthetic source: deterministic colourful scenes, every defect kind, diversity and resumable scraping."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.images import colorfulness, perceptual_hash
from pipeline.dataset.manifests import RawFile
from pipeline.dataset.scenes import KNOWN_SCENES, render_scene
from pipeline.dataset.sources.base import RawOutput
from pipeline.dataset.sources.synthetic import (
    DEFECTS,
    DROPPED_DEFECTS,
    KEPT_DEFECTS,
    SyntheticParams,
    scrape_synthetic,
    synthetic_file,
)

REPO = Path(__file__).resolve().parents[2]
SMALL = SyntheticParams(defect_rate=0.0, min_side=48, max_side=96)
ALL_DEFECTS = SMALL.model_copy(update={"defect_rate": 1.0})
REQUIRED_SCENES = {
    "sky", "forest", "fruit", "ocean", "sunset", "landscape", "beach", "waterfall",
    "mountains", "nature", "city", "street", "buildings", "town",
}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def normal_pixels(category: str, index: int, seed: int, cfg: SyntheticParams) -> np.ndarray:
    """The defect-free version of an image, decoded to RGB."""
    _, data, _ = synthetic_file(category, index, seed, cfg.model_copy(update={"defect_rate": 0.0}))
    return np.asarray(decode(data).convert("RGB"))


def hamming_matrix(hashes: list[int]) -> np.ndarray:
    """Pairwise Hamming distances of 64-bit hashes."""
    values = np.array(hashes, dtype=np.uint64)
    xor = values[:, None] ^ values[None, :]
    return np.unpackbits(xor.view(np.uint8).reshape(len(values), len(values), 8), axis=-1).sum(-1)


# ---------------------------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_same_inputs_give_the_same_bytes() -> None:
    for cfg in (SMALL, ALL_DEFECTS):
        for index in range(8):
            assert synthetic_file("beach", index, 7, cfg) == synthetic_file("beach", index, 7, cfg)


@pytest.mark.slow
def test_bytes_are_the_same_in_another_process() -> None:
    script = (
        "import hashlib; "
        "from pipeline.dataset.sources.synthetic import SyntheticParams, synthetic_file; "
        "cfg = SyntheticParams(defect_rate=0.5, min_side=48, max_side=96); "
        "print(' '.join(hashlib.sha256(synthetic_file(c, i, 3, cfg)[1]).hexdigest() "
        "for c in ('city', 'Hot Air Balloons') for i in range(4)))"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    cfg = SyntheticParams(defect_rate=0.5, min_side=48, max_side=96)
    here = [hashlib.sha256(synthetic_file(c, i, 3, cfg)[1]).hexdigest()
            for c in ("city", "Hot Air Balloons") for i in range(4)]
    assert output.stdout.split() == here


def test_seed_and_index_change_the_image() -> None:
    first = synthetic_file("forest", 0, 1, SMALL)[1]
    assert synthetic_file("forest", 0, 2, SMALL)[1] != first
    assert synthetic_file("forest", 1, 1, SMALL)[1] != first


@pytest.mark.slow
def test_defect_free_files_do_not_depend_on_the_defect_rate() -> None:
    files = [synthetic_file("town", index, 5, SMALL.model_copy(update={"defect_rate": 0.5})) for index in range(20)]
    defect_free = [index for index, (_, _, defect) in enumerate(files) if not defect]
    assert defect_free
    for index in defect_free:
        assert files[index] == synthetic_file("town", index, 5, SMALL)


# ------------------------------------------------------------------------------------------- scenes


def test_known_scenes_cover_the_required_categories() -> None:
    assert REQUIRED_SCENES <= set(KNOWN_SCENES)


@pytest.mark.parametrize("category", sorted(KNOWN_SCENES))
@pytest.mark.parametrize(("width", "height"), [(200, 150), (16, 16), (16, 120), (120, 16)])
def test_every_known_category_renders(category: str, width: int, height: int) -> None:
    pixels = render_scene(category, np.random.default_rng(0), width, height)
    assert pixels.shape == (height, width, 3)
    assert pixels.dtype == np.uint8


def test_category_lookup_uses_the_slug() -> None:
    assert np.array_equal(render_scene(" Forest ", np.random.default_rng(4), 64, 48),
                          render_scene("forest", np.random.default_rng(4), 64, 48))


def test_unknown_categories_render_and_differ_from_each_other() -> None:
    names = ["hot air balloons", "volcano", "street art", "Zebra"]
    scenes = [render_scene(name, np.random.default_rng(9), 96, 64) for name in names]
    for scene in scenes:
        assert scene.shape == (64, 96, 3) and scene.dtype == np.uint8
        assert colorfulness(scene) >= 15
    for i in range(len(scenes)):
        for j in range(i + 1, len(scenes)):
            assert not np.array_equal(scenes[i], scenes[j]), (names[i], names[j])
    assert np.array_equal(scenes[1], render_scene("volcano", np.random.default_rng(9), 96, 64))


def test_normal_files_have_bounded_sizes_and_jpeg_or_png_names() -> None:
    cfg = SyntheticParams(defect_rate=0.0, min_side=50, max_side=70)
    formats = []
    for index in range(60):
        name, data, defect = synthetic_file("nature", index, 11, cfg)
        image = decode(data)
        assert defect == ""
        assert re.fullmatch(rf"nature_{index:04d}\.(jpg|png)", name)
        assert {"jpg": "JPEG", "png": "PNG"}[name[-3:]] == image.format
        assert image.mode == "RGB"
        assert 50 <= image.width <= 70 and 50 <= image.height <= 70
        formats.append(image.format)
    assert 0 < formats.count("PNG") < formats.count("JPEG")


@pytest.mark.slow
def test_defect_rate_sets_the_share_of_defective_files() -> None:
    cfg = SyntheticParams(defect_rate=0.1, min_side=24, max_side=32)
    share = np.mean([synthetic_file("city", i, 0, cfg)[2] != "" for i in range(400)])
    assert 0.05 < share < 0.15


# ------------------------------------------------------------------------------------------ defects


def test_defect_names_split_into_kept_and_dropped() -> None:
    assert set(DEFECTS) == set(KEPT_DEFECTS) | set(DROPPED_DEFECTS)
    assert len(DEFECTS) == len(set(DEFECTS)) == 16
    assert not set(KEPT_DEFECTS) & set(DROPPED_DEFECTS)


def png_header(data: bytes) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return data[24], data[25]


def check_unreadable(defect: str, name: str, data: bytes) -> None:
    """Assert that a file which must not decode fails the way its defect says."""
    assert name.endswith(".jpg")
    if defect == "truncated":
        assert Image.open(io.BytesIO(data)).format == "JPEG"  # the header is intact, the pixels are not
        with pytest.raises(OSError):
            decode(data)
        return
    if defect == "zero_byte":
        assert data == b""
    else:
        assert data.lower().startswith(b"<!doctype html")
    with pytest.raises(UnidentifiedImageError):
        decode(data)


def check_defect(defect: str, name: str, data: bytes, original: np.ndarray) -> None:
    """Assert that a defective file looks the way its defect says; `original` is its defect-free pixels."""
    if defect in ("truncated", "html", "zero_byte"):
        check_unreadable(defect, name, data)
        return
    image = decode(data)
    checks = {
        "wrong_extension": lambda: name.endswith(".jpg") and image.format == "PNG" and image.mode == "RGB",
        "missing_extension": lambda: "." not in name and image.format == "JPEG" and image.mode == "RGB",
        "exif_rotated": lambda: image.getexif().get(0x0112) in (6, 8)
        and image.size == original.shape[:2]
        and np.abs(np.asarray(ImageOps.exif_transpose(image), float) - original).mean() < 12,
        "rgba": lambda: image.mode == "RGBA" and image.getchannel("A").getextrema() == (0, 255),
        "palette": lambda: image.mode == "P" and "transparency" in image.info,
        "cmyk": lambda: image.mode == "CMYK" and image.format == "JPEG",
        "rgb16": lambda: png_header(data) == (16, 2) and colorfulness(np.asarray(image.convert("RGB"))) >= 15,
        "animated": lambda: image.format == "GIF" and image.n_frames >= 2,
        "grayscale": lambda: image.mode == "L" and image.format == "JPEG",
        "gray16": lambda: image.mode == "I;16" and png_header(data) == (16, 0),
        "tiny": lambda: max(image.size) <= 32 and image.mode == "RGB" and colorfulness(np.asarray(image)) >= 15,
        "exact_duplicate": lambda: image.mode == "RGB",
        "near_duplicate": lambda: image.mode == "RGB" and image.format == "JPEG",
    }
    assert checks[defect](), (defect, name, image.format, image.mode, image.size)


@pytest.mark.slow
def test_every_defect_appears_and_looks_as_described() -> None:
    seen: dict[str, int] = {}
    for index in range(200):
        name, data, defect = synthetic_file("landscape", index, 1, ALL_DEFECTS)
        assert defect in DEFECTS
        if seen.setdefault(defect, 0) < 2:
            check_defect(defect, name, data, normal_pixels("landscape", index, 1, ALL_DEFECTS))
        seen[defect] += 1
    assert set(seen) == set(DEFECTS)


@pytest.mark.slow
def test_exif_rotation_uses_both_orientations() -> None:
    orientations = {decode(data).getexif().get(0x0112)
                    for index in range(300)
                    for _, data, defect in [synthetic_file("sky", index, 2, ALL_DEFECTS)] if defect == "exif_rotated"}
    assert orientations == {6, 8}


@pytest.mark.slow
def test_duplicates_copy_the_nearest_earlier_defect_free_file() -> None:
    cfg = SyntheticParams(defect_rate=0.5, min_side=48, max_side=80)
    files = [synthetic_file("fruit", index, 4, cfg) for index in range(330)]
    normals = [(index, data) for index, (_, data, defect) in enumerate(files) if not defect]
    duplicates = [(index, data, defect) for index, (_, data, defect) in enumerate(files[:300])
                  if defect in ("exact_duplicate", "near_duplicate")]
    assert {defect for _, _, defect in duplicates} == {"exact_duplicate", "near_duplicate"}
    for index, data, defect in duplicates:
        earlier = [j for j, _ in normals if j < index]
        expected = max(earlier) if earlier else min(j for j, _ in normals if j > index)
        original = dict(normals)[expected]
        if defect == "exact_duplicate":
            assert data == original
        else:
            assert data != original
            assert bin(perceptual_hash(decode(data)) ^ perceptual_hash(decode(original))).count("1") <= 4


# ------------------------------------------------------------------------------- diversity and colour


@pytest.fixture(scope="module")
def scene_samples() -> dict[str, list[np.ndarray]]:
    """100 defect-free images per known category, as decoded from their files (at reduced sizes, for speed)."""
    cfg = SyntheticParams(defect_rate=0.0, min_side=120, max_side=240)
    return {category: [np.asarray(decode(synthetic_file(category, i, 42, cfg)[1])) for i in range(100)]
            for category in sorted(KNOWN_SCENES)}


@pytest.mark.slow
def test_same_category_images_are_rarely_near_duplicates(scene_samples: dict[str, list[np.ndarray]]) -> None:
    close = pairs = 0
    for category, images in scene_samples.items():
        distances = hamming_matrix([perceptual_hash(Image.fromarray(image)) for image in images])
        upper = distances[np.triu_indices(len(images), 1)]
        close += int((upper <= 4).sum())
        pairs += upper.size
        assert (upper <= 4).mean() < 0.01, category
    assert close / pairs < 0.01


def test_normal_images_are_colourful(scene_samples: dict[str, list[np.ndarray]]) -> None:
    for category, images in scene_samples.items():
        assert min(colorfulness(image) for image in images) >= 15, category


# ------------------------------------------------------------------------------------------- scraping


def test_scrape_writes_files_and_rows(tmp_path: Path) -> None:
    cfg = SyntheticParams(defect_rate=0.3, min_side=48, max_side=64)
    rows = scrape_synthetic("Street Art", RawOutput(tmp_path), range(6), 8, cfg)
    assert [row.source_url for row in rows] == [f"synthetic://street_art/{i}?seed=8" for i in range(6)]
    for index, row in enumerate(rows):
        name, data, _ = synthetic_file("Street Art", index, 8, cfg)
        assert row.file == f"street_art/{name}"
        assert row.category == "Street Art" and row.source == "synthetic"
        assert (tmp_path / row.file).read_bytes() == data
        assert row.sha256 == hashlib.sha256(data).hexdigest() and row.bytes == len(data)


def test_scrape_resumes_without_rewriting_existing_files(tmp_path: Path) -> None:
    cfg = SyntheticParams(defect_rate=0.3, min_side=48, max_side=64)
    first = scrape_synthetic("beach", RawOutput(tmp_path), range(4), 8, cfg)

    def stamp(row: RawFile) -> tuple[int, int]:
        stat = (tmp_path / row.file).stat()
        return stat.st_ino, stat.st_mtime_ns

    before = [stamp(row) for row in first]
    rows = scrape_synthetic("beach", RawOutput(tmp_path), range(7), 8, cfg)
    assert rows[:4] == first and len(rows) == 7
    assert [stamp(row) for row in first] == before
    assert len((tmp_path / ".journal" / "beach_0.csv").read_text().splitlines()) == 1 + 7
    assert sorted(p.name for p in (tmp_path / "beach").iterdir()) == sorted(Path(row.file).name for row in rows)


def test_scrape_regenerates_a_file_that_went_missing(tmp_path: Path) -> None:
    cfg = SyntheticParams(defect_rate=0.0, min_side=48, max_side=64)
    rows = scrape_synthetic("city", RawOutput(tmp_path), range(3), 8, cfg)
    (tmp_path / rows[1].file).unlink()
    assert scrape_synthetic("city", RawOutput(tmp_path), range(3), 8, cfg) == rows
    assert hashlib.sha256((tmp_path / rows[1].file).read_bytes()).hexdigest() == rows[1].sha256
