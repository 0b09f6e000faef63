"""Prefect's temporary API server, for stages run without PREFECT_API_URL: one per stage, out of reach of Ctrl-C, and
never outliving the stage that started it.

Prefect offers no public hook for the process of the server it starts on demand, so this adapter relies on three of its
internals, here only: `SubprocessASGIServer._instances` (the server registered under None is the one Prefect starts),
`_run_uvicorn_command` (which starts it), and that this method starts it with `subprocess.Popen`, swapped for the length
of that call. tests/flows/test_temporary_server.py fails when a Prefect release changes any of them."""

from __future__ import annotations

import contextlib
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, temporary_settings

from pipeline.core.parallel import exit_when_orphaned


class _OwnSessionServer(SubprocessASGIServer):
    """Prefect's temporary server (started when a flow first needs the API), in a session of its own, tied to the life
    of this process.

    A Ctrl-C in a terminal signals the whole foreground process group: Prefect's own temporary server died with it,
    and the interrupted flow then spent minutes failing to report its state before a traceback. In its own session
    the server outlives the interrupt, the flow reports and stops at once, and the server is stopped at exit. A stage
    that dies without exiting (SIGKILL, the OOM killer) stops nothing: the server then ends itself (see `serve`)."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        popen = subprocess.Popen

        def start(args: list[str], **options: Any) -> subprocess.Popen[Any]:
            uvicorn = args[args.index("uvicorn") + 1 :]
            return popen([sys.executable, "-m", __name__, str(os.getpid()), *uvicorn], start_new_session=True, **options)

        subprocess.Popen = start  # type: ignore[misc,assignment]
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


def serve(stage: int, uvicorn_args: list[str]) -> None:
    """`python -m uvicorn <uvicorn_args>`, ended as soon as the process `stage` (its parent) is gone."""
    exit_when_orphaned(stage)
    sys.argv = ["uvicorn", *uvicorn_args]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2:])
