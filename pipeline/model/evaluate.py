"""The evaluate stage: colorize the test images, real photos out of domain and the photos of other collections, score
them against two baselines (gray, and the training photos' median colour on every pixel), draw comparison grids."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict
from itertools import islice
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
from pipeline.dataset.params import CleanParams
from pipeline.model.colorizer import Colorizer, load_colorizer
from pipeline.model.data import SplitPairs, median_ab
from pipeline.model.metrics import METRICS, Summary, grayscale_baseline, image_metrics, summarize, tint_baseline
from pipeline.model.params import EvaluateParams
from pipeline.model.photo_folders import draw_photos, scored_photo
from pipeline.model.real_photos import real_photos

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"  # the headline numbers, DVC's metrics: the model against both baselines
SCORES_FILE = "scores.json"  # mean and std of every metric per method, on the test images, the real photos and collections
PER_CATEGORY_FILE = "per_category.csv"  # every metric's mean per category, model and baselines (a DVC plot)
PER_IMAGE_FILE = "per_image.csv"
GRIDS = "grids"
OVERVIEW = "overview.png"
REAL_PHOTOS = "real_photos"  # scores.json's key for them
REAL_PHOTOS_GRID = "real-photos.png"  # no category grid can take this name: category folders have no hyphen
REAL_PHOTOS_CELL = 256  # px: the longer side of each photo in their grid
COLLECTION_GRID = "collection-{}.png"  # grids/ of a collection's photos (category grids have no hyphen)
METHODS = ("model", "gray", "tint")  # the model, and its two baselines: no colour, and one colour everywhere
PER_IMAGE_COLUMNS = ["file", "category", "method", *METRICS]
BATCH_SIZE = 16  # test images per network call
_OVERVIEW_ROWS = 2  # per category

GridRow = list[Image.Image]  # grayscale input | colorized | original


class PhotoScores(TypedDict):
    """Mean and std of every metric for the model and each baseline (gray, tint) over `images` images."""

    model: Summary
    gray: Summary
    tint: Summary
    images: int


class Scores(PhotoScores):
    """Every score of an evaluation: on the test images, overall and per category (category -> method -> summary), on
    the real photos, and on each collection of `evaluate.collections`. scores.json holds all but per_category, which
    per_category.csv tabulates."""

    per_category: dict[str, dict[str, Summary]]
    real_photos: PhotoScores
    collections: dict[str, PhotoScores]


def score(file: str, category: str, colorized: np.ndarray, truth: np.ndarray, tint: tuple[float, float]) -> list[dict]:
    """A per-image row for the model's colorization and one for each baseline: gray, and the `tint` ab everywhere."""
    outputs = {"model": colorized, "gray": grayscale_baseline(truth), "tint": tint_baseline(truth, tint)}
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


_PREFIXES = {"model": "", "gray": "gray_", "tint": "tint_"}


def _main_numbers(scores: PhotoScores) -> dict[str, float]:
    """PSNR and ab error of the model and (gray_, tint_) of each baseline, and the model's colour spread as a share of
    the truth's."""
    numbers = {f"{_PREFIXES[method]}{metric}": scores[method][metric]["mean"] for metric in ("psnr", "ab_error") for method in METHODS}
    truth = scores["model"]["color_spread_truth"]["mean"]
    return numbers | {"spread": round(scores["model"]["color_spread"]["mean"] / truth, 4) if truth else 0.0}


def headline(summary: Scores) -> dict:
    """metrics.json: the main numbers on the test images, PSNR on the real photos against gray, and the main numbers and
    photo count of each collection (under `collections`, when there are any). Short enough for `dvc metrics show` to fit
    a full-screen terminal; scores.json has every number."""
    real = summary["real_photos"]
    numbers: dict = _main_numbers(summary) | {
        "real_psnr": real["model"]["psnr"]["mean"], "gray_real_psnr": real["gray"]["psnr"]["mean"],
    }
    if summary["collections"]:
        numbers["collections"] = {name: _main_numbers(scores) | {"photos": scores["images"]} for name, scores in summary["collections"].items()}
    return numbers


def per_category_table(summary: Scores) -> pd.DataFrame:
    """per_category.csv: a row per category, each metric's mean for the model and (gray_<metric>, tint_<metric>) each
    baseline."""
    return pd.DataFrame([
        {"category": category, **{f"{_PREFIXES[method]}{metric}": methods[method][metric]["mean"] for metric in METRICS for method in METHODS}}
        for category, methods in summary["per_category"].items()
    ])


def _by_method(per_image: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {method: per_image[per_image["method"] == method] for method in METHODS}


def score_photos(
    colorizer: Colorizer, photos: Iterable[tuple[str, Image.Image]], tint: tuple[float, float], grid_rows: int | None = None
) -> tuple[PhotoScores, list[GridRow]]:
    """The model and both baselines on color photos, each colorized at its own resolution as `colorize` does (photos of
    one size BATCH_SIZE at a time): mean and std of each metric per method, the photo count, and grid rows (the first
    `grid_rows`, or all)."""
    rows: list[dict] = []
    grid: list[GridRow] = []
    remaining = iter(photos)
    for batch in iter(lambda: list(islice(remaining, BATCH_SIZE)), []):  # read as they are scored, not all at once
        for (name, photo), colorized in zip(batch, colorizer.colorize_batch([photo for _, photo in batch]), strict=True):
            rows += score(name, "", np.asarray(colorized), np.asarray(photo), tint)
            if grid_rows is None or len(grid) < grid_rows:
                grid.append([photo.convert("L"), colorized, photo])
    if not rows:
        raise PipelineError("no photo to score")
    by_method = _by_method(pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS))
    summaries = {method: summarize(by_method[method]) for method in METHODS}
    return PhotoScores(**summaries, images=len(by_method["model"])), grid


def score_collection(colorizer: Colorizer, folder: Path, rules: EvaluateParams, clean: CleanParams, tint: tuple[float, float], grid_rows: int) -> tuple[PhotoScores, list[GridRow]]:
    """`score_photos` on up to `evaluate.max_photos` photos drawn from `folder`, each an `evaluate.size` center crop;
    photos clean would drop (gray, unreadable, too small, too large) are skipped."""
    drawn = draw_photos(folder, rules.max_photos)
    photos = ((path.relative_to(folder).as_posix(), photo) for path in drawn if (photo := scored_photo(path, rules.size, clean)) is not None)
    try:
        scores, grid = score_photos(colorizer, photos, tint, grid_rows)
    except PipelineError:
        raise PipelineError(f"evaluate.collections: no photo in {folder} to score (of {len(drawn)} drawn; see the log)") from None
    log.info("evaluate: %s: %d photos scored of %d drawn", folder, scores["images"], len(drawn))
    return scores, grid


def _write_grids(folder: Path, grids: dict[str, list[GridRow]], real_photo_rows: list[GridRow], collections: dict[str, list[GridRow]]) -> None:
    """grids/<category>.png, grids/overview.png with the first rows of every category, grids/real-photos.png with
    the real photos reduced to REAL_PHOTOS_CELL, and grids/collection-<name>.png for each collection."""
    folder.mkdir()
    for category, rows in grids.items():
        _grid(rows).save(folder / f"{category}.png", compress_level=PNG_LEVEL)
    overview = [row for rows in grids.values() for row in rows[:_OVERVIEW_ROWS]]
    _grid(overview).save(folder / OVERVIEW, compress_level=PNG_LEVEL)
    image_grid(real_photo_rows, cell=REAL_PHOTOS_CELL).save(folder / REAL_PHOTOS_GRID, compress_level=PNG_LEVEL)
    for name, rows in collections.items():
        _grid(rows).save(folder / COLLECTION_GRID.format(name), compress_level=PNG_LEVEL)


def _grid(rows: list[GridRow]) -> Image.Image:
    """A contact sheet at the images' own resolution."""
    return image_grid(rows, cell=max(max(image.size) for row in rows for image in row))


def tint_of(colorizer: Colorizer, split_root: Path) -> tuple[float, float]:
    """The tint baseline's ab: the training photos' median, recorded in the model file (or, for a model file from before it
    was, measured on the split's training photos)."""
    recorded = colorizer.info.get("tint_ab")
    if isinstance(recorded, list | tuple) and len(recorded) == 2 and all(isinstance(value, float | int) for value in recorded):
        return float(recorded[0]), float(recorded[1])
    return median_ab(SplitPairs(split_root, "train"))


def evaluate_model(
    split_root: Path, model_path: Path, eval_root: Path, device: str = "auto", grid_rows: int = 8,
    rules: EvaluateParams = EvaluateParams(), clean: CleanParams = CleanParams(),
) -> Scores:
    """Score the model and both baselines on every test image, on the real photos and on each collection of
    `rules.collections`; write metrics.json, scores.json, per_category.csv, per_image.csv (test images) and grids/;
    return every score."""
    test = SplitPairs(split_root, "test")
    if not len(test):
        raise PipelineError(f"{test.manifest} lists no test images: run the split stage again")
    colorizer = load_colorizer(model_path, device, "train.device")
    tint = tint_of(colorizer, split_root)
    rows: list[dict] = []
    grids: dict[str, list[GridRow]] = {}
    for batch in track_batches(batched(range(len(test)), BATCH_SIZE), len(test), "evaluate"):
        grays = [Image.fromarray(test[i][0][0].numpy(), "L") for i in batch]
        truths = [Image.fromarray(test[i][1].permute(1, 2, 0).numpy(), "RGB") for i in batch]
        items = [(test.files[i], test.rows.at[i, "category"]) for i in batch]
        for (file, category), gray, colorized, truth in zip(items, grays, colorizer.colorize_batch(grays), truths):
            rows += score(file, category, np.asarray(colorized), np.asarray(truth), tint)
            grid = grids.setdefault(category, [])
            if len(grid) < grid_rows:
                grid.append([gray, colorized, truth])
    per_image = pd.DataFrame(rows, columns=PER_IMAGE_COLUMNS)
    real_photo_metrics, real_photo_rows = score_photos(colorizer, real_photos().items(), tint)
    scored = {name: score_collection(colorizer, folder, rules, clean, tint, grid_rows) for name, folder in rules.collections.items()}
    metrics = Scores(**summarize_methods(per_image), real_photos=real_photo_metrics, collections={name: scores for name, (scores, _) in scored.items()})
    with staged_output(eval_root) as staging:
        per_image.to_csv(staging / PER_IMAGE_FILE, index=False)
        atomic_write_json(staging / METRICS_FILE, headline(metrics))
        atomic_write_json(staging / SCORES_FILE, {key: value for key, value in metrics.items() if key != "per_category"})
        per_category_table(metrics).to_csv(staging / PER_CATEGORY_FILE, index=False)
        _write_grids(staging / GRIDS, grids, real_photo_rows, {name: grid for name, (_, grid) in scored.items()})
    return metrics
