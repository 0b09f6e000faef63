"""What a pipeline run (`python -m flows.pipeline`) leaves in Prefect when a stage fails or a process dies: the stage's
one-line reason, said once, as the run's state message and the terminal's last line; a run whose process was killed
marked Crashed, not left Running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort

from pipeline.testing.kills import RUN_TOKEN, processes_of
from pipeline.testing.workspace import edit_params, make_workspace
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e
HEARTBEAT_SECONDS = 30  # Prefect's least: a killed run is marked Crashed 3 heartbeats (90 s) on


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, prefect_api_url: str) -> tuple[Path, dict[str, str]]:
    repo, env = make_workspace(tmp_path_factory.mktemp("failures"), prefect_api_url)
    return repo, env | {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS)}


def start_pipeline(repo: Path, env: dict[str, str], token: str) -> subprocess.Popen[str]:
    """`python -m flows.pipeline` in a session of its own; `token` in its processes' environment finds them."""
    return subprocess.Popen([sys.executable, "-m", "flows.pipeline"], cwd=repo, env=env | {RUN_TOKEN: token}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def latest_run(flow: str) -> FlowRun | None:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])), sort=FlowRunSort.START_TIME_DESC, limit=1)
    return runs[0] if runs else None


def is_running(flow: str) -> bool:
    run = latest_run(flow)
    return run is not None and run.state.is_running()


def sent_a_heartbeat(flow: str) -> bool:
    """Whether the latest run of `flow` runs and has sent its first heartbeat (as it starts): from then on it is watched."""
    run = latest_run(flow)
    if run is None or not run.state.is_running():
        return False
    query = {"filter": {"event": {"name": ["prefect.flow-run.heartbeat"]}, "any_resource": {"id": [f"prefect.flow-run.{run.id}"]}}}
    with get_client(sync_client=True) as client:
        return client.request("POST", "/events/filter", json=query).json()["total"] > 0


def stage_run(pipeline_run: FlowRun, stage: str) -> FlowRun:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[stage])),
                                     flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"pipeline-run:{pipeline_run.id}"])))
    assert len(runs) == 1, runs
    return runs[0]



def test_a_failed_stage_ends_the_pipeline_run_with_its_reason_once_in_the_terminal_and_in_the_ui(workspace):
    repo, env = workspace
    edit_params(repo, split={"test_per_category": 500})
    try:
        result = subprocess.run([sys.executable, "-m", "flows.pipeline"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    finally:
        edit_params(repo, split={"test_per_category": 2})
    reason = "split: category 'sky' has 10 images after cleaning; split.test_per_category=500 leaves none for training"
    terminal = result.stdout + result.stderr
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith(f"pipeline: error: {reason}"), terminal
    assert terminal.count("split.test_per_category=500") == 1, terminal
    assert "exit code" not in terminal and "failed to reproduce" not in terminal and "Traceback" not in terminal, terminal

    pipeline_run = latest_run("colorize-pipeline")
    assert pipeline_run.state.is_failed() and pipeline_run.state.message.startswith(reason), pipeline_run.state
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[pipeline_run.id])), sort=LogSort.TIMESTAMP_ASC)
    assert logs[-1].message == f"error: {pipeline_run.state.message}"  # the run's page ends with it
    assert sum("split.test_per_category=500" in log.message for log in logs) == 1, [log.message for log in logs]
    assert f"pipeline-run:{pipeline_run.id}" in pipeline_run.tags and "rebuilt" not in pipeline_run.tags


def test_a_stage_killed_while_the_pipeline_runs_is_marked_crashed_and_fails_the_pipeline_run(workspace):
    repo, env = workspace
    edit_params(repo, train={"epochs": 100_000})  # a training that runs until it is killed
    token = uuid.uuid4().hex
    pipeline = start_pipeline(repo, env, token)
    try:
        wait_for(lambda: any("flows.train" in command for command in processes_of(token).values()), 300, "the train stage never started")
        wait_for(lambda: is_running("train"), 60, "the train stage's run never began")
        for pid, command in processes_of(token).items():
            if "flows.train" in command:
                os.kill(pid, signal.SIGKILL)
        _, stderr = pipeline.communicate(timeout=120)
    finally:
        edit_params(repo, train={"epochs": 1})
        if pipeline.poll() is None:
            os.killpg(pipeline.pid, signal.SIGKILL)
    pipeline_run = latest_run("colorize-pipeline")
    assert pipeline.returncode == 1 and stderr.splitlines()[-1] == f"pipeline: error: {pipeline_run.state.message}"
    assert pipeline_run.state.is_failed() and pipeline_run.state.message.startswith("stage 'train' failed: "), pipeline_run.state
    assert stage_run(pipeline_run, "train").state.is_crashed()


def test_a_pipeline_run_killed_with_its_stage_is_marked_crashed_once_its_heartbeats_stop(workspace):
    """As on a machine that died: every process of the run killed at once, none left to report."""
    repo, env = workspace
    edit_params(repo, train={"epochs": 100_000})
    token = uuid.uuid4().hex
    pipeline = start_pipeline(repo, env, token)
    try:
        wait_for(lambda: sent_a_heartbeat("train") and sent_a_heartbeat("colorize-pipeline"), 300,
                 "the train stage's run never sent its first heartbeat")
        os.killpg(pipeline.pid, signal.SIGKILL)
        pipeline.wait(timeout=30)
        wait_for(lambda: not processes_of(token), 30, "a process of the killed run lives on")
    finally:
        edit_params(repo, train={"epochs": 1})
    pipeline_run = latest_run("colorize-pipeline")
    train_run = stage_run(pipeline_run, "train")
    assert pipeline_run.state.is_running() and train_run.state.is_running()
    with get_client(sync_client=True) as client:
        wait_for(lambda: all(client.read_flow_run(run.id).state.is_crashed() for run in (pipeline_run, train_run)),
                 3 * HEARTBEAT_SECONDS + 60, "the killed runs were not marked Crashed")
        assert "no heartbeat" in client.read_flow_run(pipeline_run.id).state.message
