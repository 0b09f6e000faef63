"""Photos of other collections for evaluate (`evaluate.collections`): a bounded, reproducible draw of a folder's photos,
each read safely, gray ones skipped as clean skips them, cropped to the size they are scored at."""

from __future__ import annotations

import hashlib
import heapq
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageOps

from pipeline.core.errors import PipelineError
from pipeline.core.images import color_beyond_tint, to_rgb, ycbcr_cells
from pipeline.dataset.params import CleanParams
from pipeline.dataset.resize import resize_image

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MAX_PHOTO_BYTES = 64 * 1024 * 1024


def draw_photos(folder: Path, count: int) -> list[Path]:
    """Up to `count` photos under `folder` (sub-folders too; hidden entries and links skipped): those whose relative paths
    hash lowest, so the draw spreads over every sub-folder, is the same on every machine, and a photo added moves at most
    one other out. Memory holds `count` paths, whatever the folder's size."""
    if not folder.is_dir():
        raise PipelineError(f"evaluate.collections: {folder} is not a folder")
    heap: list[tuple[bytes, str]] = []  # the `count` lowest hashes, as a max-heap of negated digests
    for relative in _walk(folder):
        key = bytes(255 - byte for byte in hashlib.sha256(relative.encode()).digest())
        if len(heap) < count:
            heapq.heappush(heap, (key, relative))
        elif key > heap[0][0]:
            heapq.heapreplace(heap, (key, relative))
    return [folder / relative for relative in sorted(relative for _, relative in heap)]


def _walk(folder: Path) -> Iterator[str]:
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(name for name in dirs if not name.startswith(".") and not os.path.islink(os.path.join(top, name)))
        for name in files:
            path = os.path.join(top, name)
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in PHOTO_SUFFIXES and not os.path.islink(path):
                yield os.path.relpath(path, folder).replace(os.sep, "/")


def scored_photo(path: Path, size: int, rules: CleanParams) -> Image.Image | None:
    """The photo at `path` as a size×size RGB center crop (scaled down or up, as the resize stage does), upright, or None
    (logged, naming it) when it is not one clean would keep: unreadable, not an image, over clean.max_pixels or 64 MB,
    a side under clean.min_side, or gray."""
    try:
        if path.stat().st_size > MAX_PHOTO_BYTES:
            return _skip(path, f"over {MAX_PHOTO_BYTES} bytes")
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore")
            if image.width * image.height > rules.max_pixels:
                return _skip(path, f"{image.width}x{image.height} pixels > clean.max_pixels={rules.max_pixels}")
            if min(image.size) < rules.min_side:
                return _skip(path, f"{image.width}x{image.height} pixels, a side < clean.min_side={rules.min_side}")
            image.load()
            rgb = to_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return _skip(path, f"not a readable image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    chroma = color_beyond_tint(ycbcr_cells(rgb))
    if chroma < rules.min_chroma:
        return _skip(path, f"gray (color beyond a tint {chroma:.2f} < clean.min_chroma={rules.min_chroma})")
    return resize_image(rgb, size, "center_crop")


def _skip(path: Path, reason: str) -> None:
    log.info("evaluate: skipped %s: %s", path, reason)
    return None
