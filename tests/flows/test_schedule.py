"""The nightly schedule fires: against a real `prefect server start`, a served deployment gets upcoming runs, a run
that falls due starts, and the server logs no error while scheduling them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipeline.testing.workspace import edit_params, make_workspace

pytestmark = pytest.mark.e2e
DEPLOYMENT = "colorize-pipeline/nightly"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`prefect server start` with its scheduler looking every second, its own home and database, on loopback;
    yields its API URL and the file its log goes to."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1"}
    env.pop("PREFECT_API_URL", None)
    log_path = home / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        yield api_url, log_path
    finally:
        process.terminate()
        process.wait(timeout=60)


def deployment_runs(api_url: str) -> list[FlowRun]:
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))


def wait_for(condition, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what} within {seconds} s; server log:\n{log.read_text()[-5000:]}"
        time.sleep(1)
    return found


def test_a_served_deployment_gets_upcoming_runs_and_a_due_run_starts(server, tmp_path):
    api_url, log = server
    repo, env = make_workspace(tmp_path, api_url)
    # The run that falls due fails at once, before any stage: publish.git_commit and no git repository. Quick, and
    # proof that the scheduled run executed the pipeline flow.
    edit_params(repo, publish={"git_commit": True})
    shutil.rmtree(repo / ".git")
    with open(tmp_path / "serve.log", "w") as serve_log:
        serving = subprocess.Popen(
            [sys.executable, "-m", "flows.pipeline", "serve", "--cron", "* * * * *"],
            cwd=repo, env={**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}, stdout=serve_log, stderr=subprocess.STDOUT,
        )
    try:
        def runs() -> list[FlowRun]:
            try:
                return deployment_runs(api_url)
            except Exception:  # the deployment is not registered yet
                return []

        upcoming = wait_for(lambda: [run for run in runs() if run.state_type == StateType.SCHEDULED], 60, "no upcoming scheduled run", log)
        assert all(run.expected_start_time.second == 0 for run in upcoming)  # on the minute, as "* * * * *" says
        started = wait_for(lambda: [run for run in runs() if run.state and run.state.is_final()], 150, "no scheduled run started and ended", log)
    finally:
        serving.terminate()
        serving.wait(timeout=60)
    assert started[0].start_time is not None and started[0].auto_scheduled
    assert "not in a git repository, which publish.git_commit needs" in (started[0].state.message or ""), started[0].state
    assert not (repo / "data" / "raw").exists()  # it stopped before the first stage
    errors = [line for line in log.read_text().splitlines() if "ERROR" in line]
    assert errors == []
