"""`dvc repro` of the dataset stages in a temporary copy of the repository, against a real Prefect server."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from pipeline.dag import stage_names
from pipeline.model.colorizer import Colorizer
from pipeline.testing.kills import RUN_TOKEN, processes_of
from pipeline.testing.workspace import edit_params, make_workspace, run
from tests.hostile import press_ctrl_c, start_as_in_a_terminal

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(tmp_path: Path, prefect_api_url: str) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the repository (as a clone would have it), set up with tiny params."""
    return make_workspace(tmp_path, prefect_api_url)


def recorded(repo: Path, stage: str) -> dict | None:
    """The stage's entry in dvc.lock: what DVC recorded as done."""
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"].get(stage)


def stages_run(output: str) -> set[str]:
    return {stage for stage in stage_names() if f"Running stage '{stage}'" in output}


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


@pytest.mark.parametrize("stage", ["scrape", "clean"])  # local threads; a process pool
def test_ctrl_c_in_a_terminal_stops_dvc_repro_at_once_in_one_line_and_the_next_repro_finishes(project, stage):
    repo, env = project
    edit_params(repo, source={"per_category": 600})
    if stage == "clean":
        run(repo, env, "dvc", "repro", "scrape")
    alone = {key: value for key, value in env.items() if key != "PREFECT_API_URL"}  # each stage starts its own server
    staging = repo / "data" / (".raw.partial" if stage == "scrape" else ".clean.partial")
    lock = recorded(repo, stage)

    process = start_as_in_a_terminal(["dvc", "repro"], repo, alone)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(staging.glob("*/*.*"))) < 5 and process.poll() is None:
        time.sleep(0.1)
    output, seconds = press_ctrl_c(process)

    assert process.returncode != 0 and seconds < 10, (seconds, output)
    assert output.count(f"{stage}: interrupted; its output was not published") == 1, output
    assert "Traceback" not in output, output
    output = {"scrape": "data/raw", "clean": "data/clean"}[stage]
    assert not (repo / output).exists() and recorded(repo, stage) == lock  # nothing recorded as done
    made = {p.name: p.stat().st_mtime_ns for p in staging.glob("*/*") if p.parent.name != ".journal"}
    assert len(made) >= 5

    rerun = run(repo, env, "dvc", "repro", stage)
    assert stages_run(rerun.stdout) == {stage}
    assert len(pd.read_csv(repo / output / "manifest.csv")) > 0
    if stage == "scrape":  # resumed: files made before the interruption were not made again
        assert {p.name: p.stat().st_mtime_ns for p in (repo / output).glob("*/*") if p.name in made} == made


def test_a_stage_killed_alone_leaves_no_process_and_the_training_resumes_from_its_last_checkpoint(project):
    """SIGKILL to the stage's process only (the OOM killer's way): its temporary Prefect server and anything else it
    started end within seconds, and the next `dvc repro` resumes the training."""
    repo, env = project
    edit_params(repo, train={"epochs": 40})
    run(repo, env, "dvc", "repro", "split")
    token = uuid.uuid4().hex
    alone = {key: value for key, value in env.items() if key != "PREFECT_API_URL"} | {RUN_TOKEN: token}  # its own server
    process = subprocess.Popen([sys.executable, "-m", "flows.train"], cwd=repo, env=alone, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = repo / "data/models/checkpoint.pt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not checkpoint.exists():
        time.sleep(0.2)
    started = processes_of(token)
    process.kill()  # SIGKILL: no chance to clean up
    process.wait(timeout=60)
    deadline = time.monotonic() + 5
    while processes_of(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(started) >= 2 and processes_of(token) == {}  # the stage and its temporary server, at least
    assert checkpoint.exists() and not (repo / "data/models/generator.pt").exists()
    reached = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= reached < 40
    resumed = run(repo, env, "dvc", "repro")
    assert f"resuming after epoch {reached} of 40" in resumed.stdout + resumed.stderr
    assert Colorizer.load(repo / "data/models/generator.pt").info["epochs"] == 40
    assert stages_run(resumed.stdout) == {"train", "evaluate"}
