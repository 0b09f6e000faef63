"""One stage's `dvc repro` as the pipeline flow runs it: its output relayed line by line at its own level, without the
stage's own timestamps, logger and run names, and without DVC's advice to commit and push by hand."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from pipeline.versioning.rebuild import StageFailed, repro_stage

pytestmark = pytest.mark.slow  # git and DVC

SCRIPT = """
import sys
print("12:00:00.123 | WARNING | pipeline.dataset.scrape - sky: 2 of 8 images obtained")
print("12:00:00.456 | INFO    | Flow run 'red-fox' - Beginning flow run 'red-fox' for flow 'one'")
print("12:00:00.789 | INFO    | Task run 'one-sky-0' - Finished in state Completed()")
print("12:00:00.790 | ERROR   | Task run 'one-sky-1' - Finished in state Failed('Task run encountered an exception')")
print("12:00:00.999 | INFO    | Flow run 'red-fox' - Finished in state Completed()")
print("plain output")
open("out.txt", "w").write("done")
sys.exit(int(sys.argv[1]))
"""


@pytest.fixture
def project(tmp_path):
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], [sys.executable, "-m", "dvc", "config", "core.analytics", "false"]):
        subprocess.run(command, cwd=tmp_path, check=True)
    (tmp_path / "stage.py").write_text(SCRIPT)
    return tmp_path


def stage_yaml(exit_code: int) -> str:
    return f"stages:\n  one:\n    cmd: python stage.py {exit_code}\n    deps: [stage.py]\n    outs: [out.txt]\n"


def test_stage_lines_keep_their_level_lose_their_timestamp_and_dvcs_hints_and_runs_completed_lines_are_dropped(project):
    (project / "dvc.yaml").write_text(stage_yaml(0))
    lines: list[tuple[int, str]] = []
    repro_stage(project, "one", lambda level, line: lines.append((level, line)), env={"EXTRA": "1"})
    assert (logging.WARNING, "sky: 2 of 8 images obtained") in lines
    assert (logging.INFO, "Beginning flow run 'red-fox' for flow 'one'") in lines
    assert (logging.ERROR, "Finished in state Failed('Task run encountered an exception')") in lines
    assert (logging.INFO, "plain output") in lines
    text = "\n".join(line for _, line in lines)
    assert "Completed()" not in text  # each run's own log has it; bare, it would say nothing
    assert "git add" not in text and "autostage" not in text and "dvc push" not in text and "12:00:00" not in text


def test_a_failing_stage_raises_with_its_last_error_line(project):
    (project / "dvc.yaml").write_text(stage_yaml(3))
    with pytest.raises(StageFailed, match=r"^stage 'one' failed \(dvc repro exit code \d+\): ERROR: failed to reproduce 'one'"):
        repro_stage(project, "one", lambda level, line: None)
