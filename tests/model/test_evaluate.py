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

from flows.evaluate import evaluate
from pipeline.config import parse_params
from pipeline.core.errors import PipelineError
from pipeline.dataset.manifests import MANIFEST, SplitFile, write_table
from pipeline.model.colorizer import Colorizer, save_generator
from pipeline.model.evaluate import REAL_PHOTOS_CELL, evaluate_model
from pipeline.model.lab import LabNormalization
from pipeline.model.metrics import METRICS
from pipeline.model.networks import define_generator
from pipeline.model.params import GeneratorParams
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
    assert headline == {
        "psnr": metrics["model"]["psnr"]["mean"], "gray_psnr": metrics["baseline"]["psnr"]["mean"],
        "ab_error": metrics["model"]["ab_error"]["mean"], "gray_ab_error": metrics["baseline"]["ab_error"]["mean"],
        "real_psnr": metrics["real_photos"]["model"]["psnr"]["mean"], "gray_real_psnr": metrics["real_photos"]["baseline"]["psnr"]["mean"],
    }
    assert json.loads((eval_root / "scores.json").read_text()) == {key: metrics[key] for key in ("model", "baseline", "images", "real_photos")}
    per_category = pd.read_csv(eval_root / "per_category.csv").set_index("category")
    assert list(per_category.index) == sorted(CATEGORIES) and len(per_category.columns) == 2 * len(METRICS)
    for category in CATEGORIES:
        assert per_category.loc[category, "gray_ssim"] == pytest.approx(metrics["per_category"][category]["baseline"]["ssim"]["mean"])


def test_the_scores_summarise_model_and_baseline_overall_and_per_category(evaluated):
    _, _, metrics = evaluated
    assert set(metrics) == {"model", "baseline", "per_category", "images", "real_photos"}
    assert metrics["images"] == len(CATEGORIES) * TEST_PER_CATEGORY
    assert set(metrics["per_category"]) == set(CATEGORIES)
    summaries = [metrics["model"], metrics["baseline"]] + [s for c in metrics["per_category"].values() for s in c.values()]
    summaries += [metrics["real_photos"]["model"], metrics["real_photos"]["baseline"]]
    for summary in summaries:
        assert set(summary) == set(METRICS)
        assert all(set(value) == {"mean", "std"} for value in summary.values())


def test_per_image_csv_has_one_row_per_test_image_and_method(evaluated):
    _, eval_root, _ = evaluated
    per_image = pd.read_csv(eval_root / "per_image.csv")
    assert list(per_image.columns) == ["file", "category", "method", *METRICS]
    assert len(per_image) == 2 * len(CATEGORIES) * TEST_PER_CATEGORY
    assert per_image.groupby("method").size().to_dict() == {"baseline": 6, "model": 6}
    assert set(per_image["file"]) == {f"{c}_{i}.png" for c in CATEGORIES for i in range(TEST_PER_CATEGORY)}


def test_the_grayscale_baseline_has_no_color_and_both_methods_share_the_truth(evaluated):
    _, eval_root, metrics = evaluated
    assert metrics["baseline"]["colorfulness"]["mean"] == pytest.approx(0, abs=0.5)
    assert metrics["model"]["colorfulness_truth"] == metrics["baseline"]["colorfulness_truth"]
    assert metrics["model"]["colorfulness_truth"]["mean"] > 10


def test_the_real_photos_are_scored_for_the_model_and_the_baseline_out_of_domain(evaluated):
    _, eval_root, metrics = evaluated
    real = metrics["real_photos"]
    assert set(real) == {"model", "baseline", "images"} and real["images"] == len(PHOTOS) >= 6
    assert real["baseline"]["colorfulness"]["mean"] == pytest.approx(0, abs=0.5)
    assert real["model"]["colorfulness_truth"] == real["baseline"]["colorfulness_truth"]
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
    assert "| psnr |" in artifact.data and "grayscale baseline" in artifact.data
    assert all(f"| {category} |" in artifact.data for category in CATEGORIES)
    assert f"Real photos, out of domain: {len(PHOTOS)} " in artifact.data and "real-photos.png" in artifact.data
    assert (tmp_path / "data/eval/metrics.json").is_file()
