"""The command line of every stage, `python -m flows.<stage>`: validate params.yaml, run the stage, and end a known
failure or a Ctrl-C with one line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import tags
from prefect.settings import PREFECT_API_URL

from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.core.errors import PipelineError

DATA = Path("data")  # the stages' inputs and outputs, relative to the repository root where DVC runs them
PIPELINE_TAG = "COLORIZE_PIPELINE_TAG"  # set by the pipeline flow for the stages it runs: their flow runs carry the tag


def _interrupt(signum: int, frame: Any) -> None:
    """Ctrl-C: the batches it cuts short report nothing more (their errors would only bury the stage's one line)."""
    logging.getLogger("prefect.task_runs").setLevel(logging.CRITICAL)
    raise KeyboardInterrupt


def handle_ctrl_c() -> None:
    """Let a Ctrl-C in a terminal end this command within seconds, with its one line: Prefect's temporary server (when
    there is no PREFECT_API_URL) in a session of its own, and the batches the interrupt cuts short quiet."""
    if not PREFECT_API_URL.value():
        from flows.temporary_server import use_own_session_server

        use_own_session_server()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when started with Ctrl-C ignored
        signal.signal(signal.SIGINT, _interrupt)


def main(stage: str, run: Callable[[Params], Any], description: str) -> None:
    """`python -m flows.<stage>`: validate params.yaml, run the stage (its module's `run`), and turn known failures into
    one line."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage}", description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: %(default)s)")
    args = parser.parse_args()
    handle_ctrl_c()
    try:
        with tags(*filter(None, [os.environ.get(PIPELINE_TAG)])):
            run(load_params(args.params))
    except PipelineError as exc:
        sys.exit(f"{stage}: error: {exc}")
    except KeyboardInterrupt:
        sys.exit(f"{stage}: interrupted; its output was not published; run it again to finish (finished work is kept)")
