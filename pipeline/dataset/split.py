"""The split stage: per category, a seeded choice of test images; grayscale inputs (x) and color targets (y)."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.config import Split
from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import staged_output
from pipeline.core.images import PNG_LEVEL, image_grid, luminance_gray
from pipeline.core.progress import track_batches
from pipeline.dataset.manifests import MANIFEST, ResizedFile, SplitFile, read_table, write_table

SPLIT_FOLDERS = ("train_x", "train_y", "test_x", "test_y")
PREVIEW = "preview.png"
_PREVIEW_PAIRS = 4


class SplitError(PipelineError):
    """The data cannot be split as asked (e.g. a category has too few images)."""


def _category_rng(seed: int, category: str) -> np.random.Generator:
    """A generator per category, so adding a category does not reshuffle the others."""
    digest = hashlib.sha256(f"{seed}/{category}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def assign_splits(resized: pd.DataFrame, test_per_category: int, seed: int) -> pd.DataFrame:
    """Add a `split` column: `test_per_category` seeded images of each category are test, the rest train."""
    parts = []
    for category, group in resized.groupby("category", sort=False):
        if len(group) <= test_per_category:
            raise SplitError(
                f"category {category!r} has {len(group)} images after cleaning; split.test_per_category="
                f"{test_per_category} leaves none for training (lower it or obtain more images)"
            )
        group = group.sort_values("file")
        test = set(_category_rng(seed, str(category)).choice(len(group), size=test_per_category, replace=False))
        parts.append(group.assign(split=["test" if i in test else "train" for i in range(len(group))]))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class SplitResult:
    """How many images each category has in train and in test (data/split/manifest.csv has each one)."""

    counts: dict[str, dict[str, int]]  # category -> {"test": n, "train": n}

    def total(self, split: str) -> int:
        return sum(per_split.get(split, 0) for per_split in self.counts.values())


def split_dataset(resized_root: Path, split_root: Path, cfg: Split, seed: int) -> SplitResult:
    """Write train_x/train_y/test_x/test_y (same file names; x is mode L with y's CIELAB lightness, y is RGB),
    manifest.csv and preview.png."""
    resized = read_table(resized_root / MANIFEST, ResizedFile)
    assigned = assign_splits(resized, cfg.test_per_category, seed)
    flat_names = [file.replace("/", "_") for file in assigned["file"]]
    with staged_output(split_root) as staging:
        for folder in SPLIT_FOLDERS:
            (staging / folder).mkdir()
        rows = [[row] for row in zip(assigned["file"], flat_names, assigned["split"])]
        for [(resized_file, name, split)] in track_batches(rows, len(rows), "split"):
            shutil.copyfile(resized_root / resized_file, staging / f"{split}_y" / name)
            with Image.open(resized_root / resized_file) as image:
                luminance_gray(image).save(staging / f"{split}_x" / name, "PNG", compress_level=PNG_LEVEL)
        manifest = pd.DataFrame(
            {"file": flat_names, "category": assigned["category"], "split": assigned["split"], "resized_file": assigned["file"]}
        )
        write_table(staging / MANIFEST, SplitFile, manifest)
        preview(staging, manifest).save(staging / PREVIEW)
    counts = manifest.groupby(["category", "split"], sort=False).size().unstack(fill_value=0)
    return SplitResult({str(category): {str(split): int(n) for split, n in row.items()} for category, row in counts.iterrows()})


def preview(split_root: Path, manifest: pd.DataFrame, cell: int = 96) -> Image.Image:
    """One row per category of test pairs, input then target: what the model will be asked to do."""
    rows = []
    for _, group in manifest[manifest["split"] == "test"].groupby("category", sort=False):
        names = list(group["file"])[:_PREVIEW_PAIRS]
        rows.append([Image.open(split_root / folder / name) for name in names for folder in ("test_x", "test_y")])
    return image_grid(rows, cell)
