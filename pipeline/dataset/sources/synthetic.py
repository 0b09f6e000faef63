"""The `synthetic` source, offline: deterministic, colourful scenes per category, plus the defects real scrapes have.

Scenes come from `scenes.render_scene`. A share `defect_rate` of the files carry one of DEFECTS, so
that an offline run exercises every rule of the clean stage.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops

from pipeline.core.fsutil import category_slug
from pipeline.dataset.manifests import RawFile
from pipeline.dataset.scenes import render_scene
from pipeline.dataset.sources.base import Journal, RawOutput, Scraped, Source, Unit
from pipeline.dataset.sources.params import SyntheticParams

KEPT_DEFECTS = (
    "wrong_extension", "missing_extension", "exif_rotated",
    "rgba", "palette", "cmyk", "rgb16", "animated",
)
"""Defects of valid colour images: cleaning must convert them to 8-bit RGB and keep them."""

DROPPED_DEFECTS = (
    "truncated", "html", "zero_byte", "grayscale", "gray16", "tiny",
    "exact_duplicate", "near_duplicate",
)
"""Defects that cleaning must drop."""

DEFECTS = KEPT_DEFECTS + DROPPED_DEFECTS

_PNG_SHARE = 0.1
_DUPLICATES = ("exact_duplicate", "near_duplicate")
_REFERENCE_WINDOW = 100

# ---------------------------------------------------------------------------------------- encoding


def _jpeg(image: Image.Image, quality: int, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1, **options)
    return buffer.getvalue()


def png_rgb16(pixels: np.ndarray) -> bytes:
    """A 48-bit (16 bits per channel) RGB PNG, written chunk by chunk since Pillow cannot save one."""
    height, width = pixels.shape[:2]
    rows = pixels.astype(">u2").reshape(height, width * 3).view(np.uint8)
    raw = np.hstack([np.zeros((height, 1), np.uint8), rows]).tobytes()  # filter type 0 before each row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class _Normal:
    """A defect-free image: its file stem, pixels and how it is encoded."""

    stem: str
    pixels: np.ndarray
    extension: str
    quality: int

    @property
    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels)

    def encode(self) -> tuple[str, bytes]:
        data = _png(self.image) if self.extension == "png" else _jpeg(self.image, self.quality)
        return f"{self.stem}.{self.extension}", data


# ----------------------------------------------------------------------------------------- defects


def _wrong_extension(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return f"{image.stem}.jpg", _png(image.image)


def _missing_extension(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return image.stem, _jpeg(image.image, image.quality)


def _exif_rotated(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    """Pixels stored turned a quarter, with the EXIF Orientation (6 or 8) that turns them upright."""
    orientation = int(rng.choice([6, 8]))
    turn = Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    exif = Image.Exif()
    exif[0x0112] = orientation
    return f"{image.stem}.jpg", _jpeg(image.image.transpose(turn), image.quality, exif=exif.tobytes())


def _rgba(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    """RGBA PNG, opaque in the middle and fading to transparent toward the corners."""
    h, w = image.pixels.shape[:2]
    rows, cols = np.ogrid[0:h, 0:w]
    radius = np.hypot((rows + 0.5) / h - 0.5, (cols + 0.5) / w - 0.5) / np.sqrt(0.5)
    alpha = (np.clip((rng.uniform(0.7, 0.9) - radius) * 4, 0, 1) * 255).astype(np.uint8)
    return f"{image.stem}.png", _png(Image.fromarray(np.dstack([image.pixels, alpha])))


def _palette(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    """Mode P PNG of 32 to 256 colours whose first palette entry is marked transparent."""
    indexed = image.image.quantize(int(rng.integers(32, 257)), method=Image.Quantize.FASTOCTREE)
    return f"{image.stem}.png", _png(indexed, transparency=0)


def _cmyk(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return f"{image.stem}.jpg", _jpeg(image.image.convert("CMYK"), image.quality)


def _rgb16(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return f"{image.stem}.png", png_rgb16(image.pixels.astype(np.uint16) * 257)


def _animated(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    """A GIF of the scene drifting sideways over 2 to 4 frames."""
    first = image.image.quantize(256, method=Image.Quantize.FASTOCTREE)
    step = max(1, image.pixels.shape[1] // 20)
    frames = [ImageChops.offset(first, i * step, 0) for i in range(1, int(rng.integers(2, 5)))]
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=frames, duration=100, loop=0)
    return f"{image.stem}.gif", buffer.getvalue()


def _truncated(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    data = _jpeg(image.image, image.quality)
    return f"{image.stem}.jpg", data[: int(len(data) * rng.uniform(0.4, 0.6))]


def _html(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    statuses = [(403, "Forbidden"), (404, "Not Found"), (503, "Service Unavailable")]
    status = statuses[int(rng.integers(len(statuses)))]
    page = (f"<!DOCTYPE html>\n<html><head><title>{status[0]} {status[1]}</title></head>\n"
            f"<body><h1>{status[1]}</h1><p>The requested image {image.stem} is not available.</p></body></html>\n")
    return f"{image.stem}.jpg", page.encode()


def _zero_byte(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return f"{image.stem}.jpg", b""


def _grayscale(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    return f"{image.stem}.jpg", _jpeg(image.image.convert("L"), image.quality)


def _gray16(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    luminance = np.asarray(image.image.convert("L"), np.uint16) * 257
    return f"{image.stem}.png", _png(Image.fromarray(luminance))


def _tiny(image: _Normal, rng: np.random.Generator) -> tuple[str, bytes]:
    """The scene shrunk so that its longer side is 16 to 32 pixels."""
    h, w = image.pixels.shape[:2]
    scale = int(rng.integers(16, 33)) / max(h, w)
    small = image.image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return f"{image.stem}.jpg", _jpeg(small, image.quality)


_DEFECT_WRITERS: dict[str, Callable[[_Normal, np.random.Generator], tuple[str, bytes]]] = {
    "wrong_extension": _wrong_extension,
    "missing_extension": _missing_extension,
    "exif_rotated": _exif_rotated,
    "rgba": _rgba,
    "palette": _palette,
    "cmyk": _cmyk,
    "rgb16": _rgb16,
    "animated": _animated,
    "truncated": _truncated,
    "html": _html,
    "zero_byte": _zero_byte,
    "grayscale": _grayscale,
    "gray16": _gray16,
    "tiny": _tiny,
}


def _duplicate(kind: str, original: _Normal, stem: str, rng: np.random.Generator) -> tuple[str, bytes]:
    """The original's exact bytes, or its pixels resized by 2–5 % and re-encoded at a lower JPEG quality."""
    if kind == "exact_duplicate":
        return f"{stem}.{original.extension}", original.encode()[1]
    h, w = original.pixels.shape[:2]
    scale = 1 + rng.choice([-1, 1]) * rng.uniform(0.02, 0.05)
    resized = original.image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    return f"{stem}.jpg", _jpeg(resized, int(rng.integers(60, 80)))


# ------------------------------------------------------------------------------------------- files


def _image_rng(seed: int, slug: str, index: int) -> np.random.Generator:
    """The generator for one image, stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}/{slug}/{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _draw_defect(rng: np.random.Generator, rate: float) -> str:
    """The image's defect, or "" (always two draws, so the scene does not depend on the rate)."""
    roll, kind = rng.random(), int(rng.integers(len(DEFECTS)))
    return DEFECTS[kind] if roll < rate else ""


def _draw_normal(rng: np.random.Generator, category: str, stem: str, cfg: SyntheticParams) -> _Normal:
    """Draw the image's size and encoding, then render its scene."""
    width, height = (int(side) for side in rng.integers(cfg.min_side, cfg.max_side + 1, size=2))
    extension = "png" if rng.random() < _PNG_SHARE else "jpg"
    quality = int(rng.integers(85, 96))
    return _Normal(stem, render_scene(category, rng, width, height), extension, quality)


def _stem(slug: str, index: int) -> str:
    return f"{slug}_{index:04d}"


def _normal_image(category: str, index: int, seed: int, cfg: SyntheticParams) -> _Normal:
    """The image at `index` as it is when it carries no defect."""
    slug = category_slug(category)
    rng = _image_rng(seed, slug, index)
    _draw_defect(rng, cfg.defect_rate)
    return _draw_normal(rng, category, _stem(slug, index), cfg)


def _reference_index(slug: str, index: int, seed: int, rate: float) -> int:
    """The nearest earlier defect-free index, else the nearest later one; the neighbour if none is near."""
    earlier = range(index - 1, max(index - _REFERENCE_WINDOW, 0) - 1, -1)
    later = range(index + 1, index + _REFERENCE_WINDOW)
    for candidate in (*earlier, *later):
        if not _draw_defect(_image_rng(seed, slug, candidate), rate):
            return candidate
    return index - 1 if index > 0 else index + 1


def synthetic_file(category: str, index: int, seed: int, cfg: SyntheticParams) -> tuple[str, bytes, str]:
    """(file name, file bytes, defect name or "") — deterministic for (category, index, seed, cfg)."""
    slug = category_slug(category)
    rng = _image_rng(seed, slug, index)
    defect = _draw_defect(rng, cfg.defect_rate)
    if defect in _DUPLICATES:
        original = _normal_image(category, _reference_index(slug, index, seed, cfg.defect_rate), seed, cfg)
        return *_duplicate(defect, original, _stem(slug, index), rng), defect
    image = _draw_normal(rng, category, _stem(slug, index), cfg)
    if not defect:
        return *image.encode(), ""
    return *_DEFECT_WRITERS[defect](image, rng), defect


def scrape_synthetic(category: str, output: RawOutput, indexes: Sequence[int], seed: int, cfg: SyntheticParams) -> list[RawFile]:
    """Write the files of `indexes` to `output`; as files, skipping those this batch's journal already holds."""
    slug = category_slug(category)
    journal = None if output.shard else Journal(output.root, f"{slug}-{indexes[0]}")  # a shard is resumed whole
    done = {row.source_url: row for row in journal.done()} if journal else {}
    rows = []
    for index in indexes:
        url = f"synthetic://{slug}/{index}?seed={seed}"
        if url not in done:
            name, data, _ = synthetic_file(category, index, seed, cfg)
            done[url] = output.save(category, name, data, "synthetic", url)
            if journal:
                journal.add(done[url])
        rows.append(done[url])
    return rows


class SyntheticSource(Source[SyntheticParams]):
    """per_category generated files per category, in batches of indexes."""

    Params = SyntheticParams

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[int]]:
        for start in range(0, self.per_category, batch_size):
            yield tuple(range(start, min(start + batch_size, self.per_category)))

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        return Scraped(scrape_synthetic(unit.category, output, unit.items, self.seed, self.params))

    def describe(self) -> str:
        return f"the embedded synthetic source (seed {self.seed}, defect rate {self.params.defect_rate})"
