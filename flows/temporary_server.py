"""Prefect's temporary API server, for stages run without PREFECT_API_URL: one per stage, out of reach of Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
import subprocess
from collections.abc import Iterator
from typing import Any

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, temporary_settings


class _OwnSessionServer(SubprocessASGIServer):
    """Prefect's temporary server (started when a flow first needs the API), in a session of its own.

    A Ctrl-C in a terminal signals the whole foreground process group: Prefect's own temporary server died with it,
    and the interrupted flow then spent minutes failing to report its state before a traceback. In its own session
    the server outlives the interrupt, the flow reports and stops at once, and the server is stopped at exit."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        popen = subprocess.Popen
        subprocess.Popen = functools.partial(popen, start_new_session=True)  # type: ignore[misc]
        try:
            return super()._run_uvicorn_command()
        finally:
            subprocess.Popen = popen  # type: ignore[misc]


def use_own_session_server() -> None:
    """Make the temporary server Prefect starts on demand an _OwnSessionServer (call before any flow runs)."""
    SubprocessASGIServer._instances.setdefault(None, _OwnSessionServer())


@contextlib.contextmanager
def api_for_workers() -> Iterator[None]:
    """Without PREFECT_API_URL each Dask worker process would start a temporary Prefect server of its own:
    start this process's one now and name it, so that the workers report to it."""
    server = SubprocessASGIServer()
    server.start()
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield
