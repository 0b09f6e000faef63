"""runner.kind dask: scrape, clean and resize on a local Dask cluster of worker processes give the default runner's bytes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from distributed import LocalCluster
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort

from flows import clean, resize, scrape, split
from flows.cli import main
from flows.runners import CONNECT_TIMEOUT, RunnerError, run_batch
from pipeline.config import parse_params
from pipeline.dag import data_stages, stage
from pipeline.testing.fakebing import FakeBing
from tests.prefect_api import task_run_names

pytestmark = pytest.mark.slow  # Dask clusters


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, started from the repository folder (not the flows' workspaces)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster


def build(folder: Path, monkeypatch: pytest.MonkeyPatch, runner: dict[str, str], layout: str = "folders") -> dict[str, bytes]:
    """scrape (synthetic) → clean → resize → split in `folder` on `runner`; every file of data/ by its relative path."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    params = parse_params({
        "workers": 2, "runner": runner, "resize": {"size": 32}, "split": {"test_per_category": 2}, "data": {"layout": layout, "shard_size": 4},
        "source": {"categories": ["sky", "forest"], "per_category": 12, "synthetic": {"defect_rate": 0.3}},
    })
    for flow_stage in (scrape, clean, resize, split):
        flow_stage.run(params)
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def batches_run_on(cluster: LocalCluster) -> int:
    """How many `run_batch` tasks the cluster has finished."""
    prefix = cluster.scheduler.task_prefixes.get("run_batch")
    return 0 if prefix is None else prefix.state_counts["memory"]


def last_flow_run_id(name: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[name])), sort=FlowRunSort.START_TIME_DESC, limit=1)[0].id


@pytest.mark.parametrize("layout", ["folders", "shards"])
def test_dask_runner_writes_the_same_bytes_and_reports_its_task_runs(tmp_path, monkeypatch, prefect_api_url, cluster, layout):
    expected = build(tmp_path / "local", monkeypatch, {"kind": "local"}, layout)
    manifest = "manifest.csv" if layout == "folders" else "manifest.parquet"
    assert {f"{out.as_posix()}/{manifest}" for name in data_stages() for out in stage(name).outputs} | {"data/clean/rejected.csv"} <= set(expected)
    images = [name for name in expected if name.startswith("data/resized/") and name.endswith(".png" if layout == "folders" else ".tar")]
    assert len(images) > 10 if layout == "folders" else 0 < len(images) <= 6  # 12 photos of each category, 4 to a shard
    before = batches_run_on(cluster)
    got = build(tmp_path / "dask", monkeypatch, {"kind": "dask", "address": cluster.scheduler_address}, layout)
    assert got.keys() == expected.keys()
    assert [name for name in expected if got[name] != expected[name]] == []
    reported = {stage: task_run_names(last_flow_run_id(stage)) for stage in data_stages()}
    assert sum(map(len, reported.values())) == batches_run_on(cluster) - before > 0  # every batch ran on Dask, and reported to the test's Prefect API
    if layout == "shards":  # a task per shard: scrape's units, then one per raw shard it packs
        raw_shards = sum(name.startswith("data/raw/shards/") for name in expected)
        assert len(reported["clean"]) == raw_shards == 6 and len(reported["resize"]) == len(reported["split"]) <= raw_shards


def test_bing_scrapes_on_local_threads_even_with_a_dask_runner(tmp_path, monkeypatch, prefect_api_url, cluster):
    monkeypatch.chdir(tmp_path)
    before = batches_run_on(cluster)
    with FakeBing(images_per_query=4) as bing:
        params = parse_params({
            "runner": {"kind": "dask", "address": cluster.scheduler_address},
            "source": {"kind": "bing", "categories": ["red car"], "per_category": 3, "bing": {"endpoint": bing.endpoint, "timeout": 5}},
        })
        assert scrape.run(params).counts == {"red car": {"saved": 3}}
    assert batches_run_on(cluster) == before


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:1", "no-port", "worker"])
def test_an_address_with_no_scheduler_fails_soon_with_one_line(tmp_path, monkeypatch, cluster, address):
    if address == "worker":
        address = next(iter(cluster.scheduler_info["workers"]))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(f"runner: {{kind: dask, address: '{address}'}}\n")
    monkeypatch.setattr("sys.argv", ["python -m flows.clean"])
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main("clean", clean.run, "clean")
    assert time.monotonic() - start < CONNECT_TIMEOUT + 3
    message = str(exit_info.value.code)
    assert message.startswith("clean: error: runner.address: ") and address in message and "\n" not in message
    assert "()" not in message  # with the reason


def test_a_worker_without_the_workspace_says_so(tmp_path):
    with pytest.raises(RunnerError, match="workers need the workspace at the same path"):
        run_batch.fn(None, str(tmp_path / "elsewhere"), len, [1])
