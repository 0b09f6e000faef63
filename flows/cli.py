"""The command line of every stage, `python -m flows.<stage>`: validate params.yaml, run the stage, and end a known
failure, a Ctrl-C or a SIGTERM with one line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect import Flow, get_client, tags
from prefect.flow_engine import run_flow
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.settings import PREFECT_API_URL

from flows import stop_while_starting, stopped
from pipeline.config import PARAMS_FILE, Params, load_params
from pipeline.core.errors import LAST_WORD, PipelineError

PIPELINE_TAG = "COLORIZE_PIPELINE_TAG"  # set by the pipeline flow for the stages it runs: their flow runs carry the tag
STAGE_RUN = "COLORIZE_STAGE_RUN_ID"  # set by the pipeline flow: the flow run it made for the stage, under its stage task
R = TypeVar("R")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM (a scheduler, a preempted machine, `kill`): the stage stops, keeping finished work."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return stopped(self.signum)


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def handle_interrupts() -> None:
    """Let Ctrl-C in a terminal, or SIGTERM, end this command within seconds, with its one line: Prefect's temporary
    server (when there is no PREFECT_API_URL) in a session of its own, ended with this process."""
    if not PREFECT_API_URL.value():
        from flows.temporary_server import use_own_session_server

        use_own_session_server()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL, stop_while_starting):  # not when ignored
            signal.signal(signum, _interrupt)


def say_known_errors_last() -> None:
    """Leave a known error's log line (`known_error`, set by flows.QuietEngines) out of the terminal: the command ends
    with that error as its last line, so the terminal says it once. The Prefect UI still shows the line."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler):
            handler.addFilter(lambda record: not getattr(record, "known_error", False))


def interrupted(exc: KeyboardInterrupt) -> str:
    """How the command was stopped: 'interrupted' (Ctrl-C) or 'terminated' (SIGTERM)."""
    return str(exc) if isinstance(exc, Interrupted) else "interrupted"


def call_flow(stage_flow: Flow[[Params], R], params: Params) -> R:
    """Run the stage's flow; under the pipeline flow, as the flow run that the pipeline made for this stage (a child of
    its stage task, so the Prefect UI shows it under the pipeline run)."""
    run_id = os.environ.pop(STAGE_RUN, None)
    if not run_id:
        return stage_flow(params)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(run_id))
    return run_flow(stage_flow, flow_run=flow_run, parameters={"params": params})  # type: ignore[return-value]


def main(stage: str, run: Callable[[Params], Any], description: str) -> None:
    """`python -m flows.<stage>`: validate params.yaml, run the stage (its module's `run`), and turn known failures into
    one line."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{stage}", description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="params file (default: %(default)s)")
    args = parser.parse_args()

    def run_stage() -> None:
        with tags(*filter(None, [os.environ.get(PIPELINE_TAG)])):
            run(load_params(args.params))

    run_command(
        stage, run_stage,
        when_interrupted="its output was not published; run it again to finish (finished work is kept)",
        when_exiting=f"{stage}: {{how}} as it exited; its output is complete; run it again to record it",
    )


def run_command(name: str, body: Callable[[], None], when_interrupted: str, when_exiting: str = "") -> None:
    """Run a command's `body`, ending a known failure (`name: error: ...`) or a Ctrl-C or SIGTERM (`name: interrupted;
    when_interrupted`) with one line; a signal once the body is done exits at once, saying `when_exiting`."""
    handle_interrupts()
    say_known_errors_last()
    try:
        body()
    except PipelineError as exc:
        exit_at_the_next_signal()
        sys.exit(last_word(f"{name}: error: {exc}"))
    except KeyboardInterrupt as exc:
        exit_at_the_next_signal()
        sys.exit(last_word(f"{name}: {interrupted(exc)}; {when_interrupted}"))
    exit_at_the_next_signal(when_exiting)


def last_word(line: str) -> str:
    """The command's last line, also written where the pipeline that runs it as a stage reads it (LAST_WORD)."""
    if path := os.environ.get(LAST_WORD):
        Path(path).write_text(line, encoding="utf-8")
    return line


def exit_at_the_next_signal(line: str = "") -> None:
    """From here on the command only exits (Prefect stops its temporary server, seconds): Ctrl-C or SIGTERM now ends it
    at once, with `line` ({how}: terminated or interrupted) when it has not said its last line yet."""

    def exit_now(signum: int, frame: Any) -> None:
        if line:
            print(last_word(line.format(how=stopped(signum))), file=sys.stderr, flush=True)
        os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is _interrupt:
            signal.signal(signum, exit_now)
