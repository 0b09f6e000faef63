"""The evaluate stage on a tiny split and an untrained generator: metrics, per-image rows, grids, the real photos out of
domain, and the flow's artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from skimage.color import rgb2lab

from flows.evaluate import evaluate
from pipeline.config import ParamsError, parse_params
from pipeline.core.errors import PipelineError
from pipeline.dataset.manifests import MANIFEST, SplitFile, write_table
from pipeline.model.colorizer import Colorizer, save_generator
from pipeline.model.data import SplitPairs, median_ab
from pipeline.model.evaluate import METHODS, REAL_PHOTOS_CELL, evaluate_model, tint_of
from pipeline.model.lab import LabNormalization
from pipeline.model.metrics import METRICS, tint_baseline
from pipeline.model.networks import define_generator
from pipeline.model.params import GeneratorParams
from pipeline.model.photo_folders import draw_photos
from pipeline.model.real_photos import PHOTOS
from tests.images import colorful

SIDE = 32
CATEGORIES = ("beach", "forest")
TEST_PER_CATEGORY = 3
GRID_ROWS = 2


def make_split(root: Path) -> Path:
    """data/split as the split stage lays it out: 3 test and 1 train image per category, 32×32."""
    for folder in ("train_x", "train_y", "test_x", "test_y"):
        (root / folder).mkdir(parents=True)
    rows = []
    for c, category in enumerate(CATEGORIES):
        for i in range(TEST_PER_CATEGORY + 1):
            split = "test" if i < TEST_PER_CATEGORY else "train"
            name = f"{category}_{i}.png"
            image = colorful(SIDE, SIDE, seed=10 * c + i)
            image.save(root / f"{split}_y" / name)
            image.convert("L").save(root / f"{split}_x" / name)
            rows.append({"file": name, "category": category, "split": split})
    write_table(root / MANIFEST, SplitFile, rows)
    return root


def make_model(path: Path) -> Path:
    """A small untrained generator, saved as the train stage saves one."""
    torch.manual_seed(0)
    config = GeneratorParams(base_filters=8, depth=3)
    save_generator(path, define_generator(config), config, LabNormalization(), SIDE, {"epochs": 0})
    return path


def grid_size(rows: int, columns: int = 3, cell: int = SIDE, gap: int = 2) -> tuple[int, int]:
    return columns * (cell + gap) + gap, rows * (cell + gap) + gap


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """One evaluation, shared: (split root, eval root, returned metrics)."""
    root = tmp_path_factory.mktemp("evaluate")
    split_root = make_split(root / "split")
    metrics = evaluate_model(split_root, make_model(root / "generator.pt"), root / "eval", grid_rows=GRID_ROWS)
    return split_root, root / "eval", metrics


def test_metrics_json_holds_the_headline_numbers_and_the_files_beside_it_every_score(evaluated):
    _, eval_root, metrics = evaluated
    headline = json.loads((eval_root / "metrics.json").read_text())
    real = metrics["real_photos"]
    assert headline == {
        **{f"{prefix}{metric}": metrics[method][metric]["mean"] for method, prefix in (("model", ""), ("gray", "gray_"), ("tint", "tint_"))
           for metric in ("psnr", "ab_error")},
        "spread": pytest.approx(metrics["model"]["color_spread"]["mean"] / metrics["model"]["color_spread_truth"]["mean"], abs=1e-4),
        "real_psnr": real["model"]["psnr"]["mean"], "gray_real_psnr": real["gray"]["psnr"]["mean"],
    }
    scores = json.loads((eval_root / "scores.json").read_text())
    assert scores == {key: metrics[key] for key in ("model", "gray", "tint", "images", "real_photos", "collections")}
    per_category = pd.read_csv(eval_root / "per_category.csv").set_index("category")
    assert list(per_category.index) == sorted(CATEGORIES) and len(per_category.columns) == 3 * len(METRICS)
    for category in CATEGORIES:
        assert per_category.loc[category, "gray_ssim"] == pytest.approx(metrics["per_category"][category]["gray"]["ssim"]["mean"])
        assert per_category.loc[category, "tint_ab_error"] == pytest.approx(metrics["per_category"][category]["tint"]["ab_error"]["mean"])


def test_the_scores_summarise_model_and_baseline_overall_and_per_category(evaluated):
    _, _, metrics = evaluated
    assert set(metrics) == {"model", "gray", "tint", "per_category", "images", "real_photos", "collections"}
    assert metrics["images"] == len(CATEGORIES) * TEST_PER_CATEGORY
    assert set(metrics["per_category"]) == set(CATEGORIES)
    summaries = [metrics[method] for method in METHODS] + [s for c in metrics["per_category"].values() for s in c.values()]
    summaries += [metrics["real_photos"][method] for method in METHODS]
    for summary in summaries:
        assert set(summary) == set(METRICS)
        assert all(set(value) == {"mean", "std"} for value in summary.values())


def test_per_image_csv_has_one_row_per_test_image_and_method(evaluated):
    _, eval_root, _ = evaluated
    per_image = pd.read_csv(eval_root / "per_image.csv")
    assert list(per_image.columns) == ["file", "category", "method", *METRICS]
    assert len(per_image) == 3 * len(CATEGORIES) * TEST_PER_CATEGORY
    assert per_image.groupby("method").size().to_dict() == {"gray": 6, "model": 6, "tint": 6}
    assert set(per_image["file"]) == {f"{c}_{i}.png" for c in CATEGORIES for i in range(TEST_PER_CATEGORY)}


def test_the_gray_baseline_has_no_color_the_tint_one_colour_and_every_method_shares_the_truth(evaluated):
    _, eval_root, metrics = evaluated
    assert metrics["gray"]["colorfulness"]["mean"] == pytest.approx(0, abs=0.5)
    tint = metrics["tint"]
    assert tint["colorfulness"]["mean"] > 5 and tint["color_spread"]["mean"] < tint["colorfulness"]["mean"] / 4  # a cast: little spread
    assert metrics["model"]["colorfulness_truth"] == metrics["gray"]["colorfulness_truth"] == metrics["tint"]["colorfulness_truth"]
    assert metrics["model"]["colorfulness_truth"]["mean"] > 10 and metrics["model"]["color_spread_truth"]["mean"] > 10


def test_the_real_photos_are_scored_for_the_model_and_the_baseline_out_of_domain(evaluated):
    _, eval_root, metrics = evaluated
    real = metrics["real_photos"]
    assert set(real) == {*METHODS, "images"} and real["images"] == len(PHOTOS) >= 6
    assert real["gray"]["colorfulness"]["mean"] == pytest.approx(0, abs=0.5)
    assert real["model"]["colorfulness_truth"] == real["gray"]["colorfulness_truth"]
    assert real["model"]["colorfulness_truth"]["mean"] > 10
    with Image.open(eval_root / "grids/real-photos.png") as sheet:
        assert sheet.size == grid_size(rows=len(PHOTOS), cell=REAL_PHOTOS_CELL, gap=REAL_PHOTOS_CELL // 32)


def test_grids_show_grayscale_colorized_and_original_per_category_and_an_overview(evaluated):
    split_root, eval_root, _ = evaluated
    grids = eval_root / "grids"
    assert sorted(path.name for path in grids.iterdir()) == ["beach.png", "forest.png", "overview.png", "real-photos.png"]
    with Image.open(grids / "beach.png") as sheet:
        assert sheet.size == grid_size(rows=GRID_ROWS)
        first_row = [np.asarray(sheet.crop((2 + c * (SIDE + 2), 2, 2 + c * (SIDE + 2) + SIDE, 2 + SIDE))) for c in range(3)]
    with Image.open(split_root / "test_x/beach_0.png") as gray, Image.open(split_root / "test_y/beach_0.png") as truth:
        assert np.array_equal(first_row[0], np.asarray(gray.convert("RGB")))
        assert np.array_equal(first_row[2], np.asarray(truth))
    with Image.open(grids / "overview.png") as overview:
        assert overview.size == grid_size(rows=2 * len(CATEGORIES))


def test_a_batch_colorizes_as_one_image_at_a_time_does(tmp_path):
    colorizer = Colorizer.load(make_model(tmp_path / "generator.pt"), "cpu")
    grays = [colorful(SIDE, SIDE, seed).convert("L") for seed in range(4)]
    singles = [np.asarray(colorizer.colorize(gray), dtype=int) for gray in grays]
    for batch in (grays, [*grays, colorful(48, 40).convert("L")]):  # the second, of mixed sizes, goes one by one
        for single, batched in zip(singles, colorizer.colorize_batch(batch)):
            assert np.abs(single - np.asarray(batched, dtype=int)).max() <= 1


def test_a_missing_model_is_a_pipeline_error_that_names_it(tmp_path):
    split_root = make_split(tmp_path / "split")
    with pytest.raises(PipelineError, match=r"model .*generator\.pt not found: train one first"):
        evaluate_model(split_root, tmp_path / "generator.pt", tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_an_interrupted_evaluation_leaves_no_output(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("pipeline.model.evaluate.image_grid", interrupt)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(make_split(tmp_path / "split"), make_model(tmp_path / "generator.pt"), tmp_path / "eval")
    assert not (tmp_path / "eval").exists()


def test_the_flow_publishes_an_evaluation_artifact(tmp_path, monkeypatch, prefect_api_url):
    monkeypatch.chdir(tmp_path)
    make_split(tmp_path / "data/split")
    make_model(tmp_path / "data/models/generator.pt")
    state = evaluate(parse_params({}), return_state=True)
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    [artifact] = [artifact for artifact in artifacts if artifact.key == "evaluation"]
    assert "| psnr |" in artifact.data and "gray baseline" in artifact.data and "tint baseline" in artifact.data
    assert all(f"| {category} |" in artifact.data for category in CATEGORIES)
    assert f"Real photos, out of domain: {len(PHOTOS)} " in artifact.data and "real-photos.png" in artifact.data
    assert (tmp_path / "data/eval/metrics.json").is_file()


def test_the_tint_is_the_median_colour_the_model_file_records_else_the_training_photos(tmp_path):
    split_root = make_split(tmp_path / "split")
    path = make_model(tmp_path / "generator.pt")
    measured = evaluate_model(split_root, path, tmp_path / "measured")
    assert tint_of(Colorizer.load(path, "cpu"), split_root) == median_ab(SplitPairs(split_root, "train"))
    payload = torch.load(path, weights_only=True)
    payload["info"]["tint_ab"] = [30.0, -40.0]  # a strong blue-green: far from these photos' colours
    torch.save(payload, path)
    recorded = evaluate_model(split_root, path, tmp_path / "recorded")
    assert recorded["tint"]["ab_error"]["mean"] > measured["tint"]["ab_error"]["mean"] + 5
    assert recorded["gray"] == measured["gray"] and recorded["model"] == measured["model"]
    truth = np.asarray(colorful(SIDE, SIDE, seed=0))
    ab = rgb2lab(tint_baseline(truth, (30.0, -40.0)))[..., 1:]
    assert np.abs(np.median(ab.reshape(-1, 2), axis=0) - [30, -40]).max() < 1  # but where the gamut clips it


def test_median_ab_is_the_median_over_the_pixels_of_the_training_photos(tmp_path):
    split_root = tmp_path / "split"
    for folder in ("train_x", "train_y", "test_x", "test_y"):
        (split_root / folder).mkdir(parents=True)
    colours = [(200, 40, 40), (40, 200, 40), (200, 40, 40)]  # red twice: the median is red's ab
    for i, colour in enumerate(colours):
        Image.new("RGB", (8, 8), colour).save(split_root / "train_y" / f"{i}.png")
        Image.new("L", (8, 8), 100).save(split_root / "train_x" / f"{i}.png")
    write_table(split_root / MANIFEST, SplitFile, [{"file": f"{i}.png", "category": "c", "split": "train"} for i in range(3)])
    red = rgb2lab(np.array([[[200, 40, 40]]], dtype=np.uint8))[0, 0, 1:]
    assert median_ab(SplitPairs(split_root, "train")) == pytest.approx(tuple(red), abs=0.05)


def write_collection(root: Path) -> Path:
    """Photos of another collection in two sub-folders, with what evaluate must skip: a gray photo, one smaller than
    clean.min_side, a file that is not an image, a hidden file and a text file."""
    for folder, seeds in (("street", range(3)), ("food", range(3, 5))):
        (root / folder).mkdir(parents=True)
        for seed in seeds:
            colorful(80, 70, seed=seed).save(root / folder / f"photo{seed}.jpg", quality=95)
    colorful(80, 70, seed=9).convert("L").convert("RGB").save(root / "street" / "gray.jpg")
    colorful(30, 30, seed=8).save(root / "food" / "small.png")
    (root / "food" / "broken.jpg").write_bytes(b"<html>not a photo</html>")
    colorful(60, 50, seed=7).save(root / "food" / ".hidden.jpg")
    (root / "notes.txt").write_text("not a photo")
    return root


def test_each_collection_is_scored_against_both_baselines_in_metrics_and_a_grid(tmp_path):
    split_root = make_split(tmp_path / "split")
    rules = parse_params({"evaluate": {"collections": {"other": str(write_collection(tmp_path / "photos"))}, "size": 40}}).evaluate
    metrics = evaluate_model(split_root, make_model(tmp_path / "generator.pt"), tmp_path / "eval", rules=rules, grid_rows=GRID_ROWS)
    other = metrics["collections"]["other"]
    assert other["images"] == 5 and set(other) == {*METHODS, "images"}
    assert other["gray"]["colorfulness"]["mean"] == pytest.approx(0, abs=0.5) and other["model"]["color_spread_truth"]["mean"] > 10
    headline = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert headline["collections"]["other"]["photos"] == 5
    assert headline["collections"]["other"]["tint_psnr"] == other["tint"]["psnr"]["mean"]
    with Image.open(tmp_path / "eval" / "grids" / "collection-other.png") as sheet:
        assert sheet.size == grid_size(rows=GRID_ROWS, cell=40)


def test_the_draw_of_a_collection_is_bounded_spread_and_moves_one_photo_when_one_is_added(tmp_path):
    root = tmp_path / "photos"
    for folder in ("a", "b", "c"):
        (root / folder).mkdir(parents=True)
        for i in range(20):
            (root / folder / f"{i}.jpg").write_bytes(b"")
    drawn = draw_photos(root, 12)
    assert len(drawn) == 12 and drawn == draw_photos(root, 12) and {path.parent.name for path in drawn} == {"a", "b", "c"}
    (root / "a" / "new.jpg").write_bytes(b"")
    assert len(set(draw_photos(root, 12)) - set(drawn)) <= 1
    with pytest.raises(PipelineError, match="evaluate.collections: .*missing is not a folder"):
        draw_photos(tmp_path / "missing", 3)


def test_a_collection_with_no_photo_to_score_is_one_line_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    rules = parse_params({"evaluate": {"collections": {"empty": str(tmp_path / "empty")}}}).evaluate
    with pytest.raises(PipelineError, match=r"evaluate.collections: no photo in .*empty to score \(of 0 drawn"):
        evaluate_model(make_split(tmp_path / "split"), make_model(tmp_path / "generator.pt"), tmp_path / "eval", rules=rules)
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("name", ["Street", "a/b", "", "x" * 41])
def test_a_collection_name_that_is_not_plain_is_a_params_error(name):
    with pytest.raises(ParamsError, match=r"evaluate.collections: .*collection name"):
        parse_params({"evaluate": {"collections": {name: "photos"}}})
