"""A user's mistake ends a stage with its one line of error, in the terminal (once, as its last line) and on the failed
flow run: no traceback from Prefect's flow or task engine (tracebacks are for bugs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.sorting import FlowRunSort

from pipeline.dag import data_stages
from pipeline.testing.workspace import REPO, tiny_params


def _write_params(folder: Path, **sections: dict) -> None:
    params = tiny_params()
    params["data"]["layout"] = "shards"
    for section, values in sections.items():
        params[section] |= values
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.fixture(scope="module")
def split_data(tmp_path_factory, prefect_api_url) -> Path:
    """A project whose data stages ran (tiny, in shards), up to data/split."""
    folder = tmp_path_factory.mktemp("project")
    _write_params(folder)
    for stage in data_stages():
        assert _run_stage(folder, stage, prefect_api_url).returncode == 0
    return folder


def _run_stage(folder: Path, stage: str, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": api_url}
    return subprocess.run([sys.executable, "-m", f"flows.{stage}"], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def _junk_cifar(folder: Path) -> None:
    batches = folder / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [*(f"data_batch_{n}" for n in range(1, 6)), "batches.meta"]:
        (batches / name).write_bytes(b"not a pickle")
    _write_params(folder, source={"kind": "cifar10", "categories": ["cat"], "cifar10": {"root": str(folder / "cifar"), "download": False}})


def _traversal_in_raw_manifest(folder: Path) -> None:
    manifest = pd.read_parquet(folder / "data/raw/manifest.parquet")
    manifest.loc[0, "shard"] = "../outside.tar"
    manifest.to_parquet(folder / "data/raw/manifest.parquet")


def _truncated_clean_shard(folder: Path) -> None:
    shard = sorted((folder / "data/clean/shards").glob("*.tar"))[0]
    shard.write_bytes(shard.read_bytes()[:700])


def _too_many_test_images(folder: Path) -> None:
    _write_params(folder, split={"test_per_category": 30})


def _no_such_device(folder: Path) -> None:
    _write_params(folder, train={"device": "cuda:7"})


def _junk_model(folder: Path) -> None:
    (folder / "data/models").mkdir(parents=True)
    (folder / "data/models/generator.pt").write_bytes(b"not a model")


CASES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "a file that is not a CIFAR-10 batch": ("scrape", _junk_cifar, "data_batch_1: not a CIFAR-10 batch"),
    "a manifest row outside its folder": ("clean", _traversal_in_raw_manifest, "../outside.tar"),
    "a shard cut short": ("resize", _truncated_clean_shard, "cut short"),
    "more test images than a category has": ("split", _too_many_test_images, "split.test_per_category=30 leaves none for training"),
    "a device the machine lacks": ("train", _no_such_device, "train.device: 'cuda:7'"),
    "a model file that is not one": ("evaluate", _junk_model, "cannot load model data/models/generator.pt"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_known_error_is_one_line_without_a_traceback(split_data, tmp_path, prefect_api_url, case):
    stage, spoil, expected = CASES[case]
    folder = tmp_path / "project"
    shutil.copytree(split_data, folder, symlinks=True)
    spoil(folder)
    result = _run_stage(folder, stage, prefect_api_url)
    assert result.returncode == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith(f"{stage}: error: ") and expected in line], result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert (result.stdout + result.stderr).count(expected) == 1, result.stdout + result.stderr  # said once, last
    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[stage])), sort=FlowRunSort.START_TIME_DESC, limit=1)
    assert run[0].state.is_failed() and expected in run[0].state.message, run[0].state
