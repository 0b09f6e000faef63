"""One stage reproduced by DVC as the pipeline flow runs it: its output relayed line by line at its own level, without the
stage's own timestamps, logger and run names, and without DVC's advice to commit and push by hand."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from pipeline.versioning.rebuild import StageFailed, repro_stage

pytestmark = pytest.mark.slow  # git and DVC

SCRIPT = """
import logging
import sys

from prefect.logging.configuration import setup_logging

setup_logging()  # Prefect's console handler, in the format the pipeline sets for its stages
flow_run, task_run = {"flow_run_id": "1", "flow_run_name": "red-fox"}, {"task_run_id": "2", "task_run_name": "one-sky-1"}
logging.getLogger("pipeline.dataset.scrape").warning("sky: 2 of 8 images obtained")
logging.getLogger("prefect.flow_runs").info("Beginning flow run 'red-fox' for flow 'one'", extra=flow_run)
logging.getLogger("prefect.task_runs").info("Finished in state Completed()", extra=task_run)
logging.getLogger("prefect.task_runs").error("Finished in state Failed('Task run encountered an exception')", extra=task_run)
print("plain output", flush=True)
if sys.argv[1] == "known-error":  # a user's mistake: said by the stage's run, then by its command's last line
    logging.getLogger("prefect.flow_runs").error("error: sky: no such folder", extra=flow_run)
    failed = "Finished in state Failed('Flow run encountered an exception: SourceError: sky: no such folder')"
    logging.getLogger("prefect.flow_runs").info(failed, extra=flow_run)
    from flows.cli import last_word  # (the flows package quiets Prefect's engine lines: imported last)

    sys.exit(last_word("one: error: sky: no such folder"))
logging.getLogger("prefect.flow_runs").info("Finished in state Completed()", extra=flow_run)
open("out.txt", "w").write("done")
sys.exit(int(sys.argv[1]))
"""
LOCAL = {"PREFECT_LOGGING_TO_API_ENABLED": "false"}  # the script's runs are made up: no server hears of them


@pytest.fixture
def project(tmp_path):
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=tmp_path, check=True)
    (tmp_path / "stage.py").write_text(SCRIPT)
    return tmp_path


def stage_yaml(how: str) -> str:
    """A stage `one` that ends as `how` says: an exit code, or "known-error"."""
    return f"stages:\n  one:\n    cmd: python stage.py {how}\n    deps: [stage.py]\n    outs: [out.txt]\n"


def relayed(project, how: str) -> list[tuple[int, str]]:
    (project / "dvc.yaml").write_text(stage_yaml(how))
    lines: list[tuple[int, str]] = []
    repro_stage(project, "one", lambda level, line: lines.append((level, line)), env=LOCAL)
    return lines


def test_stage_lines_keep_their_level_lose_their_timestamp_and_dvcs_hints_and_runs_completed_lines_are_dropped(project):
    lines = relayed(project, "0")
    assert (logging.WARNING, "sky: 2 of 8 images obtained") in lines
    assert (logging.INFO, "Beginning flow run 'red-fox' for flow 'one'") in lines
    failed = lines.index((logging.ERROR, "Finished in state Failed('Task run encountered an exception')"))
    assert failed < lines.index((logging.INFO, "plain output"))  # a failure the stage went on from, in its place
    text = "\n".join(line for _, line in lines)
    assert "Completed()" not in text  # each run's own log has it; bare, it would say nothing
    assert "git add" not in text and "autostage" not in text and "dvc push" not in text and "[" not in text
    assert "Data and pipelines are up to date." not in "\n".join(line for _, line in relayed(project, "0"))  # skipped: the caller says so


def test_a_stage_that_fails_with_a_known_error_raises_its_last_line_and_the_lines_repeating_it_are_dropped(project):
    lines: list[tuple[int, str]] = []
    (project / "dvc.yaml").write_text(stage_yaml("known-error"))
    with pytest.raises(StageFailed) as failed:
        repro_stage(project, "one", lambda level, line: lines.append((level, line)), env=LOCAL)
    assert str(failed.value) == "one: sky: no such folder"
    text = "\n".join(line for _, line in lines)
    assert "no such folder" not in text and "failed to reproduce" not in text, text
    assert (logging.ERROR, "Finished in state Failed('Task run encountered an exception')") in lines  # it does not repeat it
    assert (logging.INFO, "plain output") in lines


def test_a_stage_that_fails_without_a_last_line_raises_with_dvcs_reason(project):
    (project / "dvc.yaml").write_text(stage_yaml("3"))
    with pytest.raises(StageFailed, match=r"^stage 'one' failed: failed to reproduce 'one': .*exited with 3$"):
        repro_stage(project, "one", lambda level, line: None, env=LOCAL)
