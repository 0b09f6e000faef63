"""The command line every stage shares: a Ctrl-C or SIGTERM while a stage starts ends it at once, in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.testing.workspace import REPO

pytestmark = pytest.mark.slow  # starts stages


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("after", [0.3, 1.5])  # while it imports Prefect and the library (seconds)
def test_a_stage_signalled_while_it_starts_ends_at_once_in_one_line(tmp_path: Path, signum: signal.Signals, after: float):
    """Here a stage with no params.yaml: once started, it would end in its one line of error."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stage = subprocess.Popen([sys.executable, "-m", "flows.clean"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    stage.send_signal(signum)
    signalled = time.monotonic()
    lines = stage.communicate(timeout=30)[1].strip().splitlines()
    how = "terminated" if signum == signal.SIGTERM else "interrupted"
    started = ["clean: error: params.yaml: cannot read (No such file or directory)"]  # a fast machine had started before
    assert lines in ([f"clean: {how} while starting; nothing was done; run it again"], started), lines
    assert stage.returncode != 0 and time.monotonic() - signalled < 5
