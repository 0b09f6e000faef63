"""Rebuild the DVC pipeline one stage at a time, with one rebuild per workspace at a time."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import LAST_WORD, PipelineError
from pipeline.core.fsutil import exclusive_lock

LOCK_FILE = Path(".dvc/tmp/pipeline.lock")
LOG_FORMAT = "[%(levelname)s] %(message)s"  # how a stage the pipeline runs writes its log lines, which the pipeline reads
_LOG_LINE = re.compile(r"^\[(?P<level>[A-Z]+)\] (?P<message>.*)$")
STAGE_LOGGING = {  # Prefect's console format for the stage, set through its documented PREFECT_LOGGING_* overrides
    f"PREFECT_LOGGING_FORMATTERS_STANDARD_{key}": LOG_FORMAT for key in ("FORMAT", "FLOW_RUN_FMT", "TASK_RUN_FMT")
}
RUN_COMPLETED = "Finished in state Completed("  # Prefect's line as each of the stage's runs ends: its own run shows it
RUN_FAILED = "Finished in state Failed("
MAX_HELD = 100  # failure lines held back at most, before they are relayed anyway


class StageFailed(PipelineError):
    """`dvc repro` of one stage exited with an error."""


def stage_order(root: Path) -> list[str]:
    """The names of the stages in dvc.yaml, each after the stages it depends on."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        with Repo(str(root)) as repo:
            graph = repo.index.graph
            order = list(reversed(list(nx.topological_sort(graph))))
    except DvcException as exc:
        raise PipelineError(f"{root}: not a usable DVC pipeline ({exc})") from None
    return [stage.name for stage in order if isinstance(stage, PipelineStage)]


def lock_entries(root: Path) -> dict[str, Any]:
    """What dvc.lock records per stage (params, dependency and output hashes); empty before the first run."""
    path = root / "dvc.lock"
    if not path.is_file():
        return {}
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})


def changed_stages(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Stages whose dvc.lock entry differs: those that ran and recorded something new."""
    return [name for name in after if before.get(name) != after[name]]


def repro_stage(root: Path, stage: str, log: Callable[[int, str], None], env: dict[str, str] | None = None) -> None:
    """DVC reproduces `stage` alone if it is stale (with `env` added to its environment), in a process of its own. Every
    output line goes to `log` with its level, without the stage's own log time and logger or run name (the caller's log
    adds its own), and without what the stage's last word repeats: a failed stage raises StageFailed with that word, its
    one-line reason, which the caller says once."""
    with tempfile.TemporaryDirectory(prefix="last-word-") as folder:
        last_word = Path(folder) / "last-word"
        environment = {key: value for key, value in os.environ.items() if key != "PREFECT__FLOW_RUN_ID"} | (env or {})
        environment |= STAGE_LOGGING | {LAST_WORD: str(last_word), "TQDM_DISABLE": "1"}  # bars would flood the log
        command = [sys.executable, "-m", __name__, stage]
        relay = _Relay(stage, log, last_word)
        with subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            assert process.stdout is not None
            for line in process.stdout:
                relay.line(line.rstrip())
        said = relay.flush()
    if process.returncode != 0:
        raise StageFailed(_reason(stage, said))


def _reason(stage: str, last_word: str) -> str:
    """A failed stage's one line: its command's last word (`<stage>: error: <reason>`), or else DVC's reason."""
    if last_word.startswith(f"{stage}: "):
        return f"{stage}: {last_word.removeprefix(f'{stage}: ').removeprefix('error: ')}"
    return f"stage {stage!r} failed: {last_word or 'no output'}"


class _Relay:
    """Relays a stage's output to `log`, holding back its failure lines until its last word shows whether they repeat it:
    the stage's runs log its reason (`error: <reason>`, `Finished in state Failed(...)`) before its command ends with it
    (`<stage>: error: <reason>`)."""

    def __init__(self, stage: str, log: Callable[[int, str], None], last_word: Path):
        self.stage, self.log, self.last_word = stage, log, last_word
        self.held: list[tuple[int, str]] = []

    def line(self, line: str) -> None:
        if not line:
            return
        match = _LOG_LINE.match(line)
        level = logging.getLevelNamesMapping().get(match["level"], logging.INFO) if match else logging.INFO
        message = match["message"] if match else line
        if message.startswith(RUN_COMPLETED):  # says nothing once its run's name is gone
            return
        failure = level >= logging.ERROR or message.startswith(RUN_FAILED) or (match is None and line.startswith(f"{self.stage}: "))
        if failure and len(self.held) < MAX_HELD:
            self.held.append((level, message))
            return
        self.flush()  # in their order: a failure the stage went on from, or the lines its last word repeats
        self.log(level, message)

    def flush(self) -> str:
        """Relay the lines held back, but those that repeat the stage's last word, if it has said it; return that word."""
        said = self.last_word.read_text(encoding="utf-8").strip() if self.last_word.is_file() else ""
        reason = said.split(": error: ", 1)[-1]
        for level, message in self.held:
            if not reason or (reason not in message and message != said):
                self.log(level, message)
        self.held = []
        return said


def _reproduce(stage: str) -> None:
    """`python -m pipeline.versioning.rebuild <stage>`, in the workspace: DVC's Python API reproduces `stage` alone if
    it is stale; DVC's warnings and errors as log lines, its reason for a failure as the last word (unless the stage's
    command said its own)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    dvc_log = logging.getLogger("dvc")
    dvc_log.handlers, dvc_log.propagate = [handler], False
    dvc_log.setLevel(logging.WARNING)
    try:
        with Repo(".") as repo:
            repo.reproduce(targets=[stage], single_item=True)
    except DvcException as exc:
        reason = f"{exc}: {exc.__cause__}" if exc.__cause__ else str(exc)
        last_word = Path(os.environ[LAST_WORD])
        if not last_word.is_file():
            last_word.write_text(reason, encoding="utf-8")
        sys.exit(1)
    except KeyboardInterrupt:  # Ctrl-C reached the stage too: its last word says it
        sys.exit(130)


def workspace_lock(root: Path, owner: str) -> AbstractContextManager[None]:
    """Hold the workspace's rebuild lock; refuse clearly, naming the holder, when another rebuild has it."""
    return exclusive_lock(root / LOCK_FILE, owner, f"{root.resolve()}: another pipeline run is rebuilding this workspace")


if __name__ == "__main__":
    _reproduce(sys.argv[1])
