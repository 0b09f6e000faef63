"""The evaluate stage: colorize the test images, and real photos out of domain, score them against the grayscale baseline,
draw comparison grids."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import atomic_write_json, staged_output
from pipeline.core.images import PNG_LEVEL, image_grid
from pipeline.core.parallel import batched
from pipeline.core.progress import track_batches
from pipeline.model.colorizer import Colorizer, load_colorizer
from pipeline.model.data import SplitPairs
from pipeline.model.metrics import METRICS, Summary, grayscale_baseline, image_metrics, summarize
from pipeline.model.real_photos import real_photos

METRICS_FILE = "metrics.json"  # the headline numbers, DVC's metrics: model against the grayscale baseline
SCORES_FILE = "scores.json"  # mean and std of every metric per method, on the test images and the real photos
PER_CATEGORY_FILE = "per_category.csv"  # the main metrics' means per category, model and baseline (a DVC plot)
PER_IMAGE_FILE = "per_image.csv"
GRIDS = "grids"
OVERVIEW = "overview.png"
REAL_PHOTOS = "real_photos"  # scores.json's key for them
REAL_PHOTOS_GRID = "real-photos.png"  # no category grid can take this name: category folders have no hyphen
REAL_PHOTOS_CELL = 256  # px: the longer side of each photo in their grid
METHODS = ("model", "baseline")
PER_IMAGE_COLUMNS = ["file", "category", "method", *METRICS]
BATCH_SIZE = 16  # test images per network call
_OVERVIEW_ROWS = 2  # per category

GridRow = list[Image.Image]  # grayscale input | colorized | original


class PhotoScores(TypedDict):
    """Mean and std of every metric for the model and the grayscale baseline over `images` images."""

    model: Summary
    baseline: Summary
    images: int


class Scores(PhotoScores):
    """Every score of an evaluation: on the test images, overall and per category (category -> method -> summary),
    and on the real photos. scores.json holds all but per_category, which per_category.csv tabulates."""

    per_category: dict[str, dict[str, Summary]]
    real_photos: PhotoScores


def score(file: str, category: str, colorized: np.ndarray, truth: np.ndarray) -> list[dict]:
    """One per-image row for the model's colorization and one for the grayscale baseline."""
    outputs = {"model": colorized, "baseline": grayscale_baseline(truth)}
    return [
        {"file": file, "category": category, "method": method, **asdict(image_metrics(outputs[method], truth))}
        for method in METHODS
    ]


def summarize_methods(per_image: pd.DataFrame) -> dict:
    """Mean and std of each metric per method, overall and per category, and the image count (Scores but real_photos)."""
    by_method = _by_method(per_image)
    per_category = {method: summarize(rows, by="category") for method, rows in by_method.items()}
    return {
        **{method: summarize(rows) for method, rows in by_method.items()},
        "per_category": {category: {method: per_category[method][category] for method in METHODS} for category in per_category["model"]},
        "images": len(by_method["model"]),
    }


def headline(summary: Scores) -> dict[str, float]:
    """metrics.json: PSNR and ab error of the model and (gray_<name>) of the grayscale baseline, and PSNR on the real
    photos."""
    real = summary["real_photos"]
    return {
        "psnr": summary["model"]["psnr"]["mean"], "gray_psnr": summary["baseline"]["psnr"]["mean"],
        "ab_error": summary["model"]["ab_error"]["mean"], "gray_ab_error": summary["baseline"]["ab_error"]["mean"],
        "real_psnr": real["model"]["psnr"]["mean"], "gray_real_psnr": real["baseline"]["psnr"]["mean"],
    }


def per_category_table(summary: Scores) -> pd.DataFrame:
    """per_category.csv: a row per category, each metric's mean for the model and (gray_<metric>) the baseline."""
    return pd.DataFrame([
        {"category": category, **{f"{prefix}{metric}": methods[method][metric]["mean"]
                                  for metric in METRICS for method, prefix in (("model", ""), ("baseline", "gray_"))}}
        for category, methods in summary["per_category"].items()
    ])


def _by_method(per_image: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {method: per_image[per_image["method"] == method] for method in METHODS}


def score_real_photos(colorizer: Colorizer) -> tuple[PhotoScores, list[GridRow]]:
    """The model and the grayscale baseline on scikit-image's real photos, each colorized at full resolution as `colorize`
    does: the real_photos block of the scores (mean and std of each metric per method, and the photo count), and a grid row
    per photo."""
    rows: list[dict] = []
    grid: list[GridRow] = []
    for name, photo in real_photos().items():
        colorized = colorizer.colorize(photo)
        rows += score(name, REAL_PHOTOS, np.asarray(colorized), np.asarray(photo))
        grid.append([photo.convert("L"), colorized, photo])
    by_method = _by_method(pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS))
    return PhotoScores(model=summarize(by_method["model"]), baseline=summarize(by_method["baseline"]), images=len(grid)), grid


def _write_grids(folder: Path, grids: dict[str, list[GridRow]], real_photo_rows: list[GridRow]) -> None:
    """grids/<category>.png, grids/overview.png with the first rows of every category, and grids/real-photos.png with
    the real photos reduced to REAL_PHOTOS_CELL."""
    folder.mkdir()
    for category, rows in grids.items():
        _grid(rows).save(folder / f"{category}.png", compress_level=PNG_LEVEL)
    overview = [row for rows in grids.values() for row in rows[:_OVERVIEW_ROWS]]
    _grid(overview).save(folder / OVERVIEW, compress_level=PNG_LEVEL)
    image_grid(real_photo_rows, cell=REAL_PHOTOS_CELL).save(folder / REAL_PHOTOS_GRID, compress_level=PNG_LEVEL)


def _grid(rows: list[GridRow]) -> Image.Image:
    """A contact sheet at the images' own resolution."""
    return image_grid(rows, cell=max(max(image.size) for row in rows for image in row))


def evaluate_model(split_root: Path, model_path: Path, eval_root: Path, device: str = "auto", grid_rows: int = 8) -> Scores:
    """Score the model and the grayscale baseline on every test image and on the real photos; write metrics.json,
    scores.json, per_category.csv, per_image.csv (test images) and grids/; return every score."""
    test = SplitPairs(split_root, "test")
    if not len(test):
        raise PipelineError(f"{test.manifest} lists no test images: run the split stage again")
    colorizer = load_colorizer(model_path, device, "train.device")
    rows: list[dict] = []
    grids: dict[str, list[GridRow]] = {}
    for batch in track_batches(batched(range(len(test)), BATCH_SIZE), len(test), "evaluate"):
        grays = [Image.fromarray(test[i][0][0].numpy(), "L") for i in batch]
        truths = [Image.fromarray(test[i][1].permute(1, 2, 0).numpy(), "RGB") for i in batch]
        items = [(test.files[i], test.rows.at[i, "category"]) for i in batch]
        for (file, category), gray, colorized, truth in zip(items, grays, colorizer.colorize_batch(grays), truths):
            rows += score(file, category, np.asarray(colorized), np.asarray(truth))
            grid = grids.setdefault(category, [])
            if len(grid) < grid_rows:
                grid.append([gray, colorized, truth])
    per_image = pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)
    real_photo_metrics, real_photo_rows = score_real_photos(colorizer)
    metrics = Scores(**summarize_methods(per_image), real_photos=real_photo_metrics)
    with staged_output(eval_root) as staging:
        per_image.to_csv(staging / PER_IMAGE_FILE, index=False)
        atomic_write_json(staging / METRICS_FILE, headline(metrics))
        atomic_write_json(staging / SCORES_FILE, {key: value for key, value in metrics.items() if key != "per_category"})
        per_category_table(metrics).to_csv(staging / PER_CATEGORY_FILE, index=False)
        _write_grids(staging / GRIDS, grids, real_photo_rows)
    return metrics
