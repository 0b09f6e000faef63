"""What an attacker or a terminal does to the pipeline, for the tests: a pickle that runs code, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


class WritesMarker:
    """Unpickled by a plain pickle.load or torch.load(weights_only=False), this creates `path` (as any code could run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def start_as_in_a_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`command` as a terminal starts it: its own process group, SIGINT not ignored (even if the tests run in the
    background), output captured."""
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def press_ctrl_c(process: subprocess.Popen[str]) -> tuple[str, float]:
    """SIGINT to the whole process group, as a terminal sends it; returns the output and the seconds until exit."""
    os.killpg(process.pid, signal.SIGINT)
    signalled = time.monotonic()
    output = process.communicate(timeout=120)[0]
    return output, time.monotonic() - signalled
