"""The process pool: its processes ignore Ctrl-C from the moment they start (a terminal signals the whole group)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from pipeline.core.parallel import process_pool


def _ignores_sigint(pid: int) -> bool:
    """Whether the kernel says process `pid` ignores SIGINT (its SigIgn mask, as /proc shows it)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_pools_processes_start_with_the_pool_and_ignore_ctrl_c_from_birth():
    """Checked at once, while they may still be importing: a Ctrl-C then would otherwise print a traceback."""
    with process_pool(2) as pool:
        processes = list(pool._processes.values())
        assert len(processes) == 2
        assert all(_ignores_sigint(process.pid) for process in processes)
        assert pool.submit(sum, [1, 2]).result() == 3
