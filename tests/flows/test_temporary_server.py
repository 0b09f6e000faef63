"""The temporary Prefect server of a stage run without PREFECT_API_URL, which flows.temporary_server starts through
Prefect internals (named in its docstring): these tests fail when a Prefect release changes them. The server runs in
a session of its own (a Ctrl-C in the terminal does not reach it), and never outlives its stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from pipeline.testing.kills import RUN_TOKEN, processes_of
from tests.waiting import wait_for

pytestmark = pytest.mark.slow  # starts a Prefect server

STAGE = """
import sys
from flows.temporary_server import use_own_session_server
use_own_session_server()
from prefect import flow

@flow
def nothing() -> None:
    pass

nothing()
print("ran", flush=True)
sys.stdin.readline()  # until the test lets it end
"""



def start_stage(tmp_path) -> tuple[subprocess.Popen[str], str, int]:
    """A stage-like process that ran a flow without PREFECT_API_URL; its pid's token, and its server's pid."""
    token = uuid.uuid4().hex
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env |= {RUN_TOKEN: token, "PREFECT_HOME": str(tmp_path / "prefect")}
    stage = subprocess.Popen([sys.executable, "-c", STAGE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert stage.stdout is not None and stage.stdout.readline() == "ran\n"
    servers = [pid for pid, command in processes_of(token).items() if f"flows.temporary_server {stage.pid}" in command]
    assert len(servers) == 1, processes_of(token)
    return stage, token, servers[0]


def test_the_server_runs_in_a_session_of_its_own_and_stops_when_its_stage_exits(tmp_path):
    stage, token, server = start_stage(tmp_path)
    assert os.getsid(server) == server != os.getsid(stage.pid)  # a Ctrl-C at the stage's terminal does not reach it
    stage.communicate("\n", timeout=60)
    assert stage.returncode == 0
    wait_for(lambda: not processes_of(token), 30, "the server outlived its stage")


def test_the_server_of_a_stage_killed_without_exiting_ends_itself(tmp_path):
    stage, token, server = start_stage(tmp_path)
    stage.send_signal(signal.SIGKILL)
    stage.wait(timeout=30)
    wait_for(lambda: not processes_of(token), 30, "the server outlived its killed stage")
