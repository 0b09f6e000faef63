"""The resize stage: every clean image to a size×size RGB PNG (center_crop, pad or squash)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
from PIL import Image

from pipeline.core.fsutil import staged_output
from pipeline.core.images import PNG_LEVEL
from pipeline.core.parallel import BatchMapper, serial_map
from pipeline.core.progress import track_batches
from pipeline.dataset.layout import Output, read_images, work_units
from pipeline.dataset.manifests import CleanFile, ResizedFile, read_manifest, write_manifest
from pipeline.dataset.params import ResizeMode, ResizeParams

_QUALITY_MARGIN = 1.5  # decode JPEGs at >= 1.5x the target scale (DCT scaling), then Lanczos: fast and sharp


def _draft_request(width: int, height: int, size: int, mode: ResizeMode) -> tuple[int, int]:
    """The smallest decode size that keeps `_QUALITY_MARGIN`x the pixels the output needs."""
    if mode == "squash":
        return (_QUALITY_MARGIN * size, _QUALITY_MARGIN * size)
    side = min(width, height) if mode == "center_crop" else max(width, height)
    factor = min(1.0, _QUALITY_MARGIN * size / side)
    return (math.ceil(width * factor), math.ceil(height * factor))


def resize_image(image: Image.Image, size: int, mode: ResizeMode) -> Image.Image:
    """An RGB size×size image; `image` may be a JPEG not yet loaded (it is then decoded at reduced scale)."""
    if image.format == "JPEG":
        image.draft("RGB", _draft_request(*image.size, size, mode))
    image = image.convert("RGB")
    width, height = image.size
    resample = Image.Resampling.LANCZOS
    if mode == "squash":
        return image.resize((size, size), resample, reducing_gap=3.0)
    if mode == "center_crop":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return image.resize((size, size), resample, box=(left, top, left + side, top + side), reducing_gap=3.0)
    scale = size / max(width, height)
    inner = (max(1, round(width * scale)), max(1, round(height * scale)))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(image.resize(inner, resample, reducing_gap=3.0), ((size - inner[0]) // 2, (size - inner[1]) // 2))
    return canvas


def resize_batch(clean_root: Path, out_root: Path, size: int, mode: ResizeMode, rows: list[tuple[str, ...]]) -> list[tuple[str, str]]:
    """Resize the images (clean_file[, shard]) of a unit to `<clean_file's stem>.png` in out_root (or the shard of the
    same name there); return each (file, shard)."""
    shard = rows[0][1] if rows and len(rows[0]) > 1 else ""
    files = [row[0] for row in rows]
    with Output(out_root, shard) as output:
        for clean_file, reader in zip(files, read_images(clean_root, files, shard), strict=True):
            encoded = io.BytesIO()
            with Image.open(reader) as image:
                resize_image(image, size, mode).save(encoded, "PNG", compress_level=PNG_LEVEL)
            output.write(str(Path(clean_file).with_suffix(".png")), encoded.getvalue())
    return [(str(Path(file).with_suffix(".png")), shard) for file in files]


@dataclass(frozen=True)
class ResizeResult:
    images: int
    size: int
    mode: ResizeMode


def resize_dataset(
    clean_root: Path, resized_root: Path, cfg: ResizeParams, map_batches: BatchMapper = serial_map, workers: int = 1
) -> ResizeResult:
    """Resize every image of clean_root's manifest and publish resized_root with its manifest, in the same layout."""
    clean, layout = read_manifest(clean_root, CleanFile)
    with staged_output(resized_root) as staging:
        work = partial(resize_batch, clean_root, staging, cfg.size, cfg.mode)
        batches = track_batches(map_batches(work, work_units(clean, ["file"], layout, workers)), len(clean), "resize")
        files, shards = zip(*(row for batch in batches for row in batch), strict=True) if len(clean) else ((), ())
        resized = pd.DataFrame({"file": files, "category": clean["category"], "clean_file": clean["file"], "shard": shards})
        write_manifest(staging, ResizedFile, resized, layout)
    return ResizeResult(len(files), cfg.size, cfg.mode)
