"""`dvc repro` of the dataset stages in a temporary copy of the repository, against a real Prefect server."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.dag import stage_names
from pipeline.model.colorizer import Colorizer
from pipeline.testing.workspace import edit_params, run, stages_run

pytestmark = pytest.mark.e2e


def test_dvc_repro_builds_the_dataset_then_skips_then_reruns_only_what_changed(project):
    repo, env = project
    first = run(repo, env, "dvc", "repro")
    assert stages_run(first.stdout) == set(stage_names())

    raw = pd.read_csv(repo / "data/raw/manifest.csv")
    assert set(raw.columns) >= {"file", "category", "source", "source_url", "sha256", "bytes"}
    assert raw.groupby("category").size().to_dict() == {"fruit": 14, "sky": 14}
    rejected = pd.read_csv(repo / "data/clean/rejected.csv")
    assert len(rejected) > 0 and set(rejected.columns) == {"file", "category", "reason", "detail"}
    split = pd.read_csv(repo / "data/split/manifest.csv")
    assert split[split["split"] == "test"].groupby("category").size().to_dict() == {"fruit": 2, "sky": 2}
    name = split["file"].iloc[0]
    folder = split["split"].iloc[0]
    assert Image.open(repo / f"data/split/{folder}_x/{name}").mode == "L"
    assert Image.open(repo / f"data/split/{folder}_y/{name}").size == (32, 32)
    metrics = run(repo, env, "dvc", "metrics", "show").stdout
    assert "summary.json" in metrics and "kept" in metrics and "eval/metrics.json" in metrics and "gray_psnr" in metrics
    assert max(len(line) for line in metrics.splitlines()) <= 170  # fits a full-screen terminal; the detail is in plots
    assert Colorizer.load(repo / "data/models/generator.pt").info["epochs"] == 1
    assert (repo / "data/models/checkpoint.pt").is_file() and (repo / "data/eval/grids/overview.png").is_file()
    run(repo, env, "dvc", "plots", "show", "-o", str(repo.parent / "plots"))
    page = (repo.parent / "plots" / "index.html").read_text()
    assert "loss_g_l1" in page and "data_eval_grids_overview.png" in page and "data_split_preview.png" in page
    assert "PSNR per category" in page and "Images kept per category" in page

    second = run(repo, env, "dvc", "repro")
    assert stages_run(second.stdout) == set()

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["resize"]["size"] = 24
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    third = run(repo, env, "dvc", "repro")
    assert stages_run(third.stdout) == {"resize", "split", "train", "evaluate"}
    assert Image.open(repo / f"data/split/{folder}_y/{name}").size == (24, 24)


def test_dvc_repro_in_the_shards_layout_writes_a_few_shards_per_stage_trains_evaluates_then_skips(project):
    repo, env = project
    edit_params(repo, data={"layout": "shards", "shard_size": 4})
    first = run(repo, env, "dvc", "repro")
    assert stages_run(first.stdout) == set(stage_names())
    for stage in ("raw", "clean", "resized", "split"):
        files = [path for path in (repo / "data" / stage).rglob("*") if path.is_file()]
        assert (repo / "data" / stage / "manifest.parquet").is_file() and not (repo / "data" / stage / "manifest.csv").exists()
        assert sum(path.suffix == ".tar" for path in files) <= 2 * 2 * 4 and all(path.suffix != ".png" or path.name == "preview.png" for path in files)
    split = pd.read_parquet(repo / "data/split/manifest.parquet")
    assert split[split["split"] == "test"].groupby("category").size().to_dict() == {"fruit": 2, "sky": 2}
    assert Colorizer.load(repo / "data/models/generator.pt").info["epochs"] == 1 and (repo / "data/eval/grids/overview.png").is_file()
    assert stages_run(run(repo, env, "dvc", "repro").stdout) == set()
    assert "up to date" in run(repo, env, "dvc", "status").stdout


def test_bad_params_fail_in_one_line_and_write_nothing(project):
    repo, env = project
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["source"]["kind"] = "flickr"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    result = run(repo, env, sys.executable, "-m", "flows.scrape", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("scrape: error: params.yaml: source.kind: Input should be")
    assert "Traceback" not in result.stderr
    assert [path.name for path in (repo / "data").iterdir()] == [".gitignore"]  # as committed: no output, no partial folder
