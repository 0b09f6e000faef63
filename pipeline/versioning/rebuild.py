"""Rebuild the DVC pipeline one stage at a time, with one rebuild per workspace at a time."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import PipelineError
from pipeline.core.fsutil import exclusive_lock

LOCK_FILE = Path(".dvc/tmp/pipeline.lock")
DVC_HINTS = (  # what `dvc repro` advises a person at a terminal; the pipeline flow pushes and commits by itself
    "To track the changes with git, run:", "git add ", "To enable auto staging, run:", "dvc config core.autostage",
    "Use `dvc push` to send your updates to remote storage.",
)
_LOG_LINE = re.compile(
    r"^\d{2}:\d{2}:\d{2}\.\d{3} \| (?P<level>[A-Z]+) *\| (?:(?P<run>(?:Flow|Task) run '[^']*')|[\w.]+) - (?P<message>.*)$"
)
RUN_COMPLETED = "Finished in state Completed("  # Prefect's line as each of the stage's runs ends: its own run shows it
RUN_FAILED = "Finished in state Failed("
DVC_UP_TO_DATE = "Data and pipelines are up to date."  # DVC's line after each skipped stage: the task's state says it
DVC_FAILED = "ERROR: failed to reproduce "  # DVC's generic line after a stage's command failed
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
    """`dvc repro --single-item <stage>` (with `env` added to its environment): DVC decides whether it is stale. Every
    output line goes to `log` with its level, without the stage's own log time, level and logger or run name (the
    caller's log adds its own), without DVC's hints to commit or push by hand, and without what the stage's last word
    repeats: a failed stage raises StageFailed with that word, its one-line reason, which the caller says once."""
    environment = {key: value for key, value in os.environ.items() if key != "PREFECT__FLOW_RUN_ID"} | (env or {})
    environment["TQDM_DISABLE"] = "1"  # the stages log their progress; bars would flood the log with \r updates
    command = [sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    relay = _Relay(stage, log)
    with subprocess.Popen(command, cwd=root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            relay.line(line.rstrip())
    relay.flush()
    if process.returncode != 0:
        raise StageFailed(relay.reason())


class _Relay:
    """Relays a stage's output to `log`, holding back its failure lines until its last word shows whether they repeat it.

    The stage's command ends a failure with one line, `<stage>: error: <reason>` (or `<stage>: interrupted; ...`), after
    its runs logged the same reason (`error: <reason>`, `Finished in state Failed(...)`) and before DVC adds its generic
    `ERROR: failed to reproduce ...`: that last word is the reason, and the lines that repeat it are dropped."""

    def __init__(self, stage: str, log: Callable[[int, str], None]):
        self.stage, self.log = stage, log
        self.held: list[tuple[int, str]] = []
        self.last_word: str | None = None
        self.last_error = ""  # the last line that mentions an error, for a stage that fails without a last word (killed)

    def line(self, line: str) -> None:
        if not line or line.strip().startswith(DVC_HINTS) or line == DVC_UP_TO_DATE:
            return
        if "error" in line.lower():
            self.last_error = line
        if line.startswith(f"{self.stage}: ") and _LOG_LINE.match(line) is None:
            self.last_word = line.removeprefix(f"{self.stage}: ").removeprefix("error: ")
            self.held = [(level, message) for level, message in self.held if self.last_word not in message]
            return
        if self.last_word is not None and line.startswith(DVC_FAILED):
            return
        relayed = _level_and_message(line)
        if relayed is None:
            return
        level, message = relayed
        if (level >= logging.ERROR or message.startswith(RUN_FAILED)) and len(self.held) < MAX_HELD:
            self.held.append(relayed)
            return
        self.flush()
        self.log(level, message)

    def flush(self) -> None:
        for level, message in self.held:
            self.log(level, message)
        self.held = []

    def reason(self) -> str:
        """The failed stage's one line: its last word, or else DVC's last error line."""
        if self.last_word is not None:
            return f"{self.stage}: {self.last_word}"
        cause = self.last_error.removeprefix("ERROR: ") or "no output"
        return f"stage {self.stage!r} failed: {cause}"


def _level_and_message(line: str) -> tuple[int, str] | None:
    """A line of the stage's output: a log line ("12:00:00.000 | WARNING | <logger, or flow or task run> - message") as
    its level and message (the caller's log says which stage), anything else at INFO; None for a run's "Finished in
    state Completed()", which says nothing once its run's name is gone."""
    match = _LOG_LINE.match(line)
    if match is None:
        return logging.INFO, line
    if match["run"] and match["message"].startswith(RUN_COMPLETED):
        return None
    return logging.getLevelNamesMapping().get(match["level"], logging.INFO), match["message"]


def workspace_lock(root: Path, owner: str) -> AbstractContextManager[None]:
    """Hold the workspace's rebuild lock; refuse clearly, naming the holder, when another rebuild has it."""
    return exclusive_lock(root / LOCK_FILE, owner, f"{root.resolve()}: another pipeline run is rebuilding this workspace")
