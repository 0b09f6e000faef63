"""Prefect flows: one per DVC stage (`python -m flows.<stage>`), thin wrappers around `pipeline`."""

import logging
import os
import signal
import sys

from pipeline.core.errors import PipelineError

# No traffic beyond loopback: Prefect's temporary server would otherwise send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Each flow run sends a heartbeat a minute: runs whose process died are marked Crashed 3 minutes on (flows.heartbeats).
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60")
# Show the library's log lines (progress, warnings) in Prefect's logs and UI.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipeline")
logging.getLogger("pipeline").setLevel(logging.INFO)


class QuietEngines(logging.Filter):
    """Prefect's flow and task engines, with less noise. A run that failed with a PipelineError (a known failure, whose
    message says what to do) logs its message alone, not its traceback: tracebacks stay for bugs, where they help.
    A run's `Finished in state Failed(...)` goes: the error line before it said why. So does a task run's bare
    `Finished in state Completed()`: its flow run's line says how the flow ended."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PipelineError):
            record.msg, record.args, record.exc_info, record.exc_text = "error: %s", (error,), None, None
            record.known_error = True  # the command's last line says it again: see flows.cli.say_known_errors_last
        message = record.getMessage()
        return not (message.startswith(FINISHED_FAILED) or record.name == "prefect.task_runs" and message.startswith(FINISHED_COMPLETED))


FINISHED_FAILED, FINISHED_COMPLETED = "Finished in state Failed(", "Finished in state Completed("
for _engine in ("prefect.flow_runs", "prefect.task_runs"):  # the loggers of Prefect's flow and task engines
    logging.getLogger(_engine).addFilter(QuietEngines())


def stopped(signum: int) -> str:
    """How a signal stops a command, in the one line it ends with: 'terminated' (SIGTERM) or 'interrupted' (Ctrl-C)."""
    return "terminated" if signum == signal.SIGTERM else "interrupted"


def stop_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while a command still imports (seconds), before flows.cli handles them: nothing is done yet,
    so it stops at once, in one line rather than a traceback or nothing at all. It exits here rather than raise: an
    exception raised inside an import's native code (pydantic's serializer, say) comes out as another, with a traceback."""
    sys.stdout.flush()
    print(f"{COMMAND.removeprefix('flows.')}: {stopped(signum)} while starting; nothing was done; run it again", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _running_module() -> str:
    """The module of `python -m <module>`, while runpy imports its package (then sys.argv[0] is '-m'), else ''."""
    if sys.argv[:1] != ["-m"] or "-m" not in sys.orig_argv[:-1]:
        return ""
    return sys.orig_argv[sys.orig_argv.index("-m") + 1]


COMMAND = _running_module()  # e.g. flows.clean; '' when this package is imported otherwise
if COMMAND.startswith("flows.") and COMMAND != "flows.temporary_server":  # the server says nothing: its stage stops it
    for _signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(_signum) in (signal.default_int_handler, signal.SIG_DFL):  # not when started with it ignored
            signal.signal(_signum, stop_while_starting)
