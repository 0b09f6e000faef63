"""The clean stage: keep images that decode fully and carry color, as 8-bit RGB, without duplicates."""

from __future__ import annotations

import io
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.fsutil import atomic_write_json, category_slug, staged_output
from pipeline.core.images import (
    DECODE_ERRORS,
    PNG_LEVEL,
    color_beyond_tint,
    correlation,
    hamming,
    perceptual_hash,
    to_rgb,
    ycbcr_cells,
)
from pipeline.core.parallel import BatchMapper, serial_map
from pipeline.core.progress import track_batches
from pipeline.core.shards import ShardWriter, read_shard, split_member
from pipeline.dataset.layout import Output, read_images, work_units
from pipeline.dataset.manifests import REJECTED, CleanFile, RawFile, Rejection, read_manifest, write_manifest, write_table
from pipeline.dataset.params import CleanParams

log = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112
_PASSTHROUGH_FORMATS = {"JPEG": "jpg", "PNG": "png"}
_MEASURE_SIDE = 128


@dataclass(frozen=True)
class Inspection:
    """What cleaning found out about one raw file; `reason` is empty for a kept file."""

    raw_file: str
    category: str
    sha256: str
    file: str = ""
    reason: str = ""
    detail: str = ""
    width: int = 0
    height: int = 0
    chroma: float = 0.0
    phash: str = ""
    luma: bytes = b""  # 16×16 lightness thumbnail that confirms a pHash match (not in the manifest)
    shard: str = ""  # shards layout: the shard of the raw file, and of the kept image


def _describe_non_image(reader: BinaryIO) -> str:
    reader.seek(0)
    head = reader.read(64)
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "HTML page, not an image"
    return f"unknown format (starts with {head[:12]!r})"


def _measure(image: Image.Image) -> tuple[float, str, bytes]:
    """(color beyond a tint, pHash as hex, 16×16 lightness thumbnail)."""
    small = image.copy()
    small.thumbnail((_MEASURE_SIDE, _MEASURE_SIDE), Image.Resampling.BOX)
    cells = ycbcr_cells(small)
    luma = np.clip(np.round(cells[..., 0]), 0, 255).astype(np.uint8).tobytes()
    return color_beyond_tint(cells), f"{perceptual_hash(small):016x}", luma


def _undecodable(found: Inspection, exc: Exception) -> Inspection:
    reason = "truncated" if "truncated" in str(exc).lower() else "corrupt"
    return replace(found, reason=reason, detail=f"{type(exc).__name__}: {exc}")


def _decode(image: Image.Image) -> tuple[Image.Image, bool]:
    """Decode every byte; return the upright 8-bit RGB image and whether the file already was exactly that."""
    oriented = image.getexif().get(_EXIF_ORIENTATION, 1) != 1
    passthrough = (
        image.format in _PASSTHROUGH_FORMATS and image.mode == "RGB" and not oriented and getattr(image, "n_frames", 1) == 1
    )
    if passthrough and image.format == "JPEG":
        image.draft("RGB", (_MEASURE_SIDE, _MEASURE_SIDE))  # still decodes every byte, at 1/8 scale: cheap
    image.load()
    if passthrough:
        return image, True
    return to_rgb(ImageOps.exif_transpose(image)), False


def inspect_image(reader: BinaryIO, output: Output, rules: CleanParams, raw_file: str, category: str, sha256: str) -> Inspection:
    """Decode one raw image, apply the rules, and write the kept image to `output`: <category>/<sha256[:16]>.<ext>
    (files), or the member <key of the raw member>.<ext> (a shard)."""
    found = Inspection(raw_file, category, sha256, shard=output.shard)
    if reader.seek(0, io.SEEK_END) == 0:
        return replace(found, reason="empty", detail="zero-byte file")
    reader.seek(0)
    try:
        image = Image.open(reader)
    except UnidentifiedImageError:
        return replace(found, reason="not_an_image", detail=_describe_non_image(reader))
    except Image.DecompressionBombError as exc:
        return replace(found, reason="decompression_bomb", detail=str(exc))
    except DECODE_ERRORS as exc:
        return _undecodable(found, exc)
    with image:
        width, height = image.size
        found = replace(found, width=width, height=height)
        if width * height > rules.max_pixels:
            return replace(found, reason="decompression_bomb", detail=f"{width}x{height} pixels > clean.max_pixels={rules.max_pixels}")
        if min(width, height) < rules.min_side:
            return replace(found, reason="too_small", detail=f"{width}x{height} < clean.min_side={rules.min_side}")
        try:
            rgb, passthrough = _decode(image)
        except DECODE_ERRORS as exc:
            return _undecodable(found, exc)
        if not passthrough:  # a passthrough JPEG was decoded at reduced scale; keep the header's size
            found = replace(found, width=rgb.width, height=rgb.height)
        chroma, phash, luma = _measure(rgb)
        found = replace(found, chroma=round(chroma, 2), phash=phash, luma=luma)
        if chroma < rules.min_chroma:
            return replace(found, reason="grayscale", detail=f"color beyond a tint {chroma:.2f} < clean.min_chroma={rules.min_chroma}")
        extension = _PASSTHROUGH_FORMATS[str(image.format)] if passthrough else "png"
        stem = split_member(raw_file)[0] if output.shard else f"{category_slug(category)}/{sha256[:16]}"
        if passthrough:
            reader.seek(0)
            kept = output.write(f"{stem}.{extension}", reader)
        else:
            encoded = io.BytesIO()
            rgb.save(encoded, "PNG", compress_level=PNG_LEVEL)
            kept = output.write(f"{stem}.{extension}", encoded.getvalue())
        return replace(found, file=kept)


def inspect_batch(raw_root: Path, out_root: Path, rules: CleanParams, rows: list[tuple[str, ...]]) -> list[Inspection]:
    """inspect_image for each (raw_file, category, sha256[, shard]) of a unit; never raises for a bad image."""
    shard = rows[0][3] if rows and len(rows[0]) > 3 else ""
    with Output(out_root, shard) as output:
        readers = read_images(raw_root, [row[0] for row in rows], shard)
        return [inspect_image(reader, output, rules, *row[:3]) for reader, row in zip(readers, rows, strict=True)]


class NearDuplicateIndex:
    """Finds a stored 64-bit hash within `max_distance` bits: by pigeonhole, a match shares one of max_distance+1 bands."""

    def __init__(self, max_distance: int) -> None:
        self.max_distance = max_distance
        bands = max_distance + 1
        edges = [round(64 * i / bands) for i in range(bands + 1)]
        self._bands = [(low, (1 << (high - low)) - 1) for low, high in zip(edges, edges[1:])]
        self._buckets: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)

    def find(self, value: int, accept: Callable[[str], bool] = lambda name: True) -> tuple[str, int] | None:
        """The nearest stored (name, distance) within max_distance of `value` whose name `accept`s."""
        best = None
        for band, (shift, mask) in enumerate(self._bands):
            for other, name in self._buckets.get((band, (value >> shift) & mask), []):
                distance = hamming(value, other)
                if distance <= self.max_distance and (best is None or distance < best[1]) and accept(name):
                    best = (name, distance)
        return best

    def add(self, value: int, name: str) -> None:
        for band, (shift, mask) in enumerate(self._bands):
            self._buckets[(band, (value >> shift) & mask)].append((value, name))


def _luma(item: Inspection) -> np.ndarray:
    return np.frombuffer(item.luma, dtype=np.uint8)


def _looks_alike(kept: dict[str, Inspection], luma: np.ndarray, minimum: float, name: str) -> bool:
    return correlation(_luma(kept[name]), luma) >= minimum


def deduplicate(inspections: list[Inspection], rules: CleanParams) -> list[Inspection]:
    """Reject exact (same bytes) and near duplicates of an earlier kept image, in the given order.

    Near: pHash within clean.near_duplicate_distance bits, and lightness thumbnails that correlate at least
    clean.near_duplicate_correlation (a 64-bit pHash of a 32-px image also pairs different pictures of one layout).
    """
    by_sha: dict[str, str] = {}
    near = NearDuplicateIndex(rules.near_duplicate_distance)
    kept: dict[str, Inspection] = {}
    result = []
    for item in inspections:
        if not item.reason:
            looks_alike = partial(_looks_alike, kept, _luma(item), rules.near_duplicate_correlation)
            if item.sha256 in by_sha:
                item = replace(item, reason="duplicate", detail=f"same bytes as {by_sha[item.sha256]}")
            elif match := near.find(int(item.phash, 16), looks_alike):
                r = correlation(_luma(kept[match[0]]), _luma(item))
                item = replace(item, reason="near_duplicate", detail=f"looks like {match[0]} (pHash distance {match[1]}, correlation {r:.2f})")
            else:
                by_sha[item.sha256] = item.raw_file
                kept[item.raw_file] = item
                near.add(int(item.phash, 16), item.raw_file)
        result.append(item)
    return result


def drop_duplicates(root: Path, inspections: list[Inspection]) -> None:
    """Remove from root the images written before `deduplicate` rejected them: their files, or their shards' members
    (a shard is written again without them, or removed when none is left)."""
    dropped = [item for item in inspections if item.file and item.reason]
    kept = {item.file for item in inspections if not item.reason and not item.shard}  # a file's exact duplicate has its name
    for item in dropped:
        if not item.shard and item.file not in kept:
            (root / item.file).unlink(missing_ok=True)
    for shard in dict.fromkeys(item.shard for item in dropped if item.shard):
        keep = {split_member(item.file)[0] for item in inspections if item.shard == shard and not item.reason}
        with ShardWriter(root / shard) as writer:  # the old shard is read in full before the new one replaces it
            for key, sample in read_shard(root / shard):
                if key in keep:
                    writer.add(key, sample)
        if not keep:
            (root / shard).unlink()


@dataclass(frozen=True)
class CleanSummary:
    """What cleaning kept and dropped: in all, by reason, and per category (kept, rejected, and each reason)."""

    total: int
    kept: int
    rejected: int
    rejected_by_reason: dict[str, int]
    per_category: dict[str, dict[str, int]]


def cleaning_summary(inspections: list[Inspection]) -> CleanSummary:
    by_reason = Counter(item.reason for item in inspections if item.reason)
    reasons = sorted(by_reason)
    found: dict[str, Counter[str]] = {}
    for item in inspections:
        found.setdefault(item.category, Counter())[item.reason or "kept"] += 1
    per_category = {
        category: {"kept": counts["kept"], "rejected": counts.total() - counts["kept"], **{reason: counts[reason] for reason in reasons}}
        for category, counts in found.items()
    }
    kept = len(inspections) - by_reason.total()
    return CleanSummary(len(inspections), kept, by_reason.total(), dict(sorted(by_reason.items())), per_category)


def clean_dataset(
    raw_root: Path, clean_root: Path, rules: CleanParams, map_batches: BatchMapper = serial_map, workers: int = 1
) -> CleanSummary:
    """Inspect every file of raw_root/manifest.csv and publish clean_root with manifest, rejected.csv, summary.json
    (the counts kept and rejected: DVC's metrics) and counts.csv (per category and reason: a DVC plot)."""
    raw, layout = read_manifest(raw_root, RawFile)
    with staged_output(clean_root) as staging:
        work = partial(inspect_batch, raw_root, staging, rules)
        batches = track_batches(map_batches(work, work_units(raw, ["file", "category", "sha256"], layout, workers)), len(raw), "clean")
        inspections = deduplicate([item for batch in batches for item in batch], rules)
        kept = [asdict(item) for item in inspections if not item.reason]
        drop_duplicates(staging, inspections)
        rejected = [{**asdict(item), "file": item.raw_file} for item in inspections if item.reason]
        write_manifest(staging, CleanFile, kept, layout)
        write_table(staging / REJECTED, Rejection, rejected)
        summary = cleaning_summary(inspections)
        atomic_write_json(staging / "summary.json", {"kept": summary.kept, "rejected": summary.rejected})
        pd.DataFrame([{"category": category, **counts} for category, counts in summary.per_category.items()]).to_csv(staging / "counts.csv", index=False)
    log.info("clean: kept %d of %d images; rejected %s", summary.kept, summary.total, summary.rejected_by_reason)
    return summary
