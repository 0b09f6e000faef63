"""The split stage: per category, a seeded choice of test images; grayscale inputs (x) and color targets (y)."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
from PIL import Image

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import staged_output
from pipeline.core.images import PNG_LEVEL, image_grid, luminance_gray
from pipeline.core.parallel import BatchMapper, serial_map
from pipeline.core.progress import track_batches
from pipeline.core.shards import ShardWriter, read_member, split_member
from pipeline.dataset.layout import Output, read_images, work_units
from pipeline.dataset.manifests import ResizedFile, SplitFile, read_manifest, write_manifest
from pipeline.dataset.params import Layout, SplitParams

SPLIT_FOLDERS = ("train_x", "train_y", "test_x", "test_y")  # the folders layout's
PREVIEW = "preview.png"
_PREVIEW_PAIRS = 4


class SplitError(PipelineError):
    """The data cannot be split as asked (e.g. a category has too few images)."""


def _draw(seed: int, category: str, file: str) -> bytes:
    """An image's place in its category's seeded order: a hash of the seed, the category and its name alone, so that
    adding an image or a category moves no other image between train and test."""
    return hashlib.sha256(f"{seed}/{category}/{file}".encode()).digest()


def assign_splits(resized: pd.DataFrame, test_per_category: int, seed: int) -> pd.DataFrame:
    """Add a `split` column: the `test_per_category` images of each category that come first in the seeded order are
    test, the rest train (an added image becomes test only if it comes before one of them, which then becomes train)."""
    parts = []
    for category, group in resized.groupby("category", sort=False):
        if len(group) <= test_per_category:
            raise SplitError(
                f"category {category!r} has {len(group)} images after cleaning; split.test_per_category="
                f"{test_per_category} leaves none for training (lower it or obtain more images)"
            )
        group = group.sort_values("file")
        test = set(sorted(group["file"], key=lambda file: _draw(seed, str(category), file))[:test_per_category])
        parts.append(group.assign(split=["test" if file in test else "train" for file in group["file"]]))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class SplitResult:
    """How many images each category has in train and in test (data/split/manifest.csv has each one)."""

    counts: dict[str, dict[str, int]]  # category -> {"test": n, "train": n}

    def total(self, split: str) -> int:
        return sum(per_split.get(split, 0) for per_split in self.counts.values())


def _gray_png(color: BinaryIO) -> bytes:
    encoded = io.BytesIO()
    with Image.open(color) as image:
        luminance_gray(image).save(encoded, "PNG", compress_level=PNG_LEVEL)
    return encoded.getvalue()


def split_batch(resized_root: Path, split_root: Path, rows: list[tuple[str, ...]]) -> list[tuple[str, int, int]]:
    """Write the pairs (resized_file, split, name[, shard]) of a unit: as `<split>_y/<name>` (the color image's bytes)
    and `<split>_x/<name>` (its luminance), or as the members `<key>.y.png` and `<key>.x.png` of the shards `train/` and
    `test/` named as the input's; return each pair's (shard, x_offset, y_offset)."""
    shard = rows[0][3] if rows and len(rows[0]) > 3 else ""
    readers = read_images(resized_root, [row[0] for row in rows], shard)
    if not shard:
        with Output(split_root) as output:
            for (_, split, name, *_), color in zip(rows, readers, strict=True):
                output.write(f"{split}_y/{name}", color.read())
                color.seek(0)
                output.write(f"{split}_x/{name}", _gray_png(color))
        return [("", 0, 0)] * len(rows)
    located = []
    with ShardWriter(split_root / "train" / Path(shard).name) as train, ShardWriter(split_root / "test" / Path(shard).name) as test:
        for (_, split, name, _), color in zip(rows, readers, strict=True):
            y = color.read()
            offsets = (train if split == "train" else test).add(name, {"x.png": _gray_png(io.BytesIO(y)), "y.png": y})
            located.append((f"{split}/{Path(shard).name}", offsets["x.png"], offsets["y.png"]))
    return located


def split_dataset(
    resized_root: Path, split_root: Path, cfg: SplitParams, seed: int, map_batches: BatchMapper = serial_map, workers: int = 1
) -> SplitResult:
    """Write the pairs (x is mode L with y's CIELAB lightness, y is RGB) in the resized images' layout: the folders
    train_x/train_y/test_x/test_y (the same file names), or the shard sets train/ and test/ (a sample `<key>.x.png` and
    `<key>.y.png` each); the manifest and preview.png."""
    resized, layout = read_manifest(resized_root, ResizedFile)
    assigned = assign_splits(resized, cfg.test_per_category, seed)
    names = [split_member(file)[0] if layout == "shards" else file.replace("/", "_") for file in assigned["file"]]
    assigned = assigned.assign(name=names)
    with staged_output(split_root) as staging:
        for folder in SPLIT_FOLDERS if layout == "folders" else ():
            (staging / folder).mkdir()
        work = partial(split_batch, resized_root, staging)
        batches = track_batches(map_batches(work, work_units(assigned, ["file", "split", "name"], layout, workers)), len(assigned), "split")
        shards, x_offsets, y_offsets = zip(*(row for batch in batches for row in batch), strict=True)
        manifest = pd.DataFrame({"file": names, "category": assigned["category"], "split": assigned["split"], "resized_file": assigned["file"],
                                 "shard": shards, "x_offset": x_offsets, "y_offset": y_offsets})
        write_manifest(staging, SplitFile, manifest, layout)
        preview(PairReader(staging, layout), manifest).save(staging / PREVIEW)
    counts = manifest.groupby(["category", "split"], sort=False).size().unstack(fill_value=0)
    return SplitResult({str(category): {str(split): int(n) for split, n in row.items()} for category, row in counts.iterrows()})


class PairReader:
    """The images of data/split's pairs, in either layout, by manifest row: x (gray) or y (color) as bytes. Shards are
    read at the row's offsets, their files kept open (at most OPEN_SHARDS of them); it pickles without them."""

    OPEN_SHARDS = 16

    def __init__(self, root: Path, layout: Layout) -> None:
        self.root, self.layout = root, layout
        self._open: OrderedDict[str, BinaryIO] = OrderedDict()

    def read(self, row: Any, which: str) -> bytes:
        """`which` ("x" or "y") of the pair in `row` (a manifest row: file, split, and shard and offsets)."""
        if self.layout == "folders":
            return (self.root / f"{row.split}_{which}" / row.file).read_bytes()
        path = self.root / row.shard
        if row.shard not in self._open:
            if len(self._open) >= self.OPEN_SHARDS:
                self._open.popitem(last=False)[1].close()
            self._open[row.shard] = open(path, "rb")  # noqa: SIM115 - kept open across reads, closed when evicted
        self._open.move_to_end(row.shard)
        return read_member(self._open[row.shard], path, int(getattr(row, f"{which}_offset")), f"{row.file}.{which}.png")

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root, "layout": self.layout, "_open": OrderedDict()}


def preview(pairs: PairReader, manifest: pd.DataFrame, cell: int = 96) -> Image.Image:
    """One row per category of test pairs, input then target: what the model will be asked to do."""
    rows = []
    for _, group in manifest[manifest["split"] == "test"].groupby("category", sort=False):
        rows.append([Image.open(io.BytesIO(pairs.read(row, which))) for row in group.head(_PREVIEW_PAIRS).itertuples() for which in ("x", "y")])
    return image_grid(rows, cell)
