"""The stage flows against a real Prefect server: task runs, artifacts, and the Bing scrape end to end."""

from __future__ import annotations

import json
import os
import sys
import time

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.clean import clean
from flows.clean import run as run_clean
from flows.cli import main
from flows.scrape import scrape
from pipeline.config import parse_params
from pipeline.testing.fakebing import FakeBing
from tests.hostile import press_ctrl_c, start_as_in_a_terminal
from tests.prefect_api import task_run_names


@pytest.fixture
def workspace(tmp_path, monkeypatch, prefect_api_url):
    """An empty project folder as the working directory (the flows read and write data/ under it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def artifacts(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        return {artifact.key: artifact.data for artifact in found}


def artifact_keys(flow_run_id) -> set[str]:
    return set(artifacts(flow_run_id))


def test_bing_scrape_runs_one_task_per_category_and_records_provenance(workspace):
    with FakeBing(images_per_query=12, special={3: "html"}) as bing:
        endpoint = bing.endpoint
        params = parse_params({
            "source": {"kind": "bing", "categories": ["red car", "blue sea"], "per_category": 6,
                       "bing": {"endpoint": endpoint, "timeout": 5}},
        })
        state = scrape(params, return_state=True)
    assert state.is_completed()
    assert sorted(task_run_names(state.state_details.flow_run_id)) == ["scrape-blue sea-0", "scrape-red car-0"]
    counts = json.loads(artifacts(state.state_details.flow_run_id)["scrape-counts"])
    assert counts == [{"category": "red car", "saved": 6, "not_an_image": 1}, {"category": "blue sea", "saved": 6, "not_an_image": 1}]
    attempts = pd.read_csv(workspace / "data/raw/attempts.csv", keep_default_na=False)
    assert attempts.groupby(["category", "outcome"]).size().to_dict() == {
        ("blue sea", "not_an_image"): 1, ("blue sea", "saved"): 6, ("red car", "not_an_image"): 1, ("red car", "saved"): 6
    }
    failed = attempts[attempts["outcome"] != "saved"].iloc[0]
    assert failed["source_url"].endswith("/3.jpg") and failed["detail"].startswith("not an image (starts with b'<!DOCTYPE html>")
    manifest = pd.read_csv(workspace / "data/raw/manifest.csv")
    assert manifest.groupby("category").size().to_dict() == {"blue sea": 6, "red car": 6}
    assert manifest["source_url"].str.startswith(endpoint.rsplit("/images", 1)[0]).all()
    assert set(manifest["file"].str.split("/").str[0]) == {"red_car", "blue_sea"}


def test_urls_scrape_runs_its_units_as_tasks_and_counts_every_outcome(workspace):
    with FakeBing(special={1: "404"}) as host:
        pd.DataFrame({"url": [host.image_url("sky", index) for index in range(40)], "category": "sky"}).to_csv("urls.csv", index=False)
        params = parse_params({"source": {"kind": "urls", "categories": ["sky"], "per_category": 40, "urls": {"file": "urls.csv"}}})
        state = scrape(params, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    assert sorted(task_run_names(flow_run_id)) == ["scrape-sky-0", "scrape-sky-1"]
    assert json.loads(artifacts(flow_run_id)["scrape-counts"]) == [{"category": "sky", "saved": 39, "http_status": 1}]
    assert len(pd.read_csv(workspace / "data/raw/manifest.csv")) == 39


def test_clean_flow_publishes_a_summary_artifact_and_runs_batches_as_tasks(workspace):
    params = parse_params({"source": {"categories": ["sky"], "per_category": 30}})
    scrape(params)
    state = clean(params, return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    assert sorted(task_run_names(flow_run_id)) == [f"clean-{i:04d}" for i in range(4)]
    assert "clean-summary" in artifact_keys(flow_run_id)
    assert (workspace / "data/clean/summary.json").exists()


def test_a_stage_run_before_its_inputs_exist_fails_with_one_line(workspace, monkeypatch):
    (workspace / "params.yaml").write_text("seed: 1\n")
    monkeypatch.setattr("sys.argv", ["python -m flows.clean"])
    with pytest.raises(SystemExit) as exit_info:
        main("clean", run_clean, "clean")
    assert exit_info.value.code == "clean: error: data/raw/manifest.csv not found: run the stages before this one first (dvc repro)"
    assert not (workspace / "data/clean").exists()


def test_ctrl_c_during_a_bing_scrape_stops_at_once_keeps_what_arrived_and_retries_nothing(workspace, prefect_api_url):
    """Ctrl-C used to wait for the downloads in flight (40 s measured), then Prefect retried the stopped category."""
    with FakeBing(images_per_query=8, special={0: "drip_body", 4: "drip_body"}, drip_seconds=0.5) as bing:
        (workspace / "params.yaml").write_text(yaml.safe_dump({"source": {
            "kind": "bing", "categories": ["red car"], "per_category": 8,
            "bing": {"endpoint": bing.endpoint, "timeout": 60, "downloads_per_category": 8}}}))
        process = start_as_in_a_terminal([sys.executable, "-m", "flows.scrape"], workspace, {**os.environ, "PREFECT_API_URL": prefect_api_url})
        journal = workspace / "data/.raw.partial/.journal/red_car.csv"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 4):
            time.sleep(0.1)  # the images behind the dripping first one have arrived, and are journaled
        output, seconds = press_ctrl_c(process)
    assert process.returncode == 1 and seconds < 5, (seconds, output)
    assert output.count("scrape: interrupted; its output was not published; run it again to finish (finished work is kept)") == 1
    assert "Traceback" not in output and "Retrying" not in output and "AwaitingRetry" not in output, output
    saved = pd.read_csv(journal)
    assert len(saved) >= 3 and not saved["source_url"].str.endswith(("/0.jpg", "/4.jpg")).any()
    assert all((workspace / "data/.raw.partial" / name).is_file() for name in saved["file"])
    assert not (workspace / "data/raw").exists()
