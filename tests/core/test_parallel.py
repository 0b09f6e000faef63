"""The process pool: its processes ignore Ctrl-C and SIGTERM from the moment they start (a terminal or a scheduler
signals the whole group), and end when the program that owns them dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.core.parallel import IGNORED_SIGNALS, process_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _ignored(pid: int) -> set[signal.Signals]:
    """The signals the kernel says process `pid` ignores (its SigIgn mask, as /proc shows it)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return {signum for signum in signal.Signals if mask & (1 << (signum - 1))}


def test_the_pools_processes_start_with_the_pool_and_ignore_ctrl_c_and_sigterm_from_birth():
    """Checked at once, while they may still be importing: a Ctrl-C then would otherwise print a traceback."""
    assert set(IGNORED_SIGNALS) == {signal.SIGINT, signal.SIGTERM}
    with process_pool(2) as pool:
        processes = list(pool._processes.values())
        assert len(processes) == 2
        assert all(_ignored(process.pid) >= {signal.SIGINT, signal.SIGTERM} for process in processes)
        assert pool.submit(sum, [1, 2]).result() == 3


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_the_pools_processes_end_soon_after_their_owner_is_killed_in_the_middle_of_a_batch():
    owner = textwrap.dedent("""
        import time
        from pipeline.core.parallel import process_pool
        with process_pool(2) as pool:
            pool.submit(time.sleep, 600)
            print(*(process.pid for process in pool._processes.values()), flush=True)
            time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in process.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    process.kill()  # SIGKILL: the owner runs no code of its own
    process.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)
