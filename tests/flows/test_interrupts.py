"""`dvc repro` interrupted: Ctrl-C in a terminal, and the stage's process killed alone, as the OOM killer does; the next
`dvc repro` finishes what the interrupted one left."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pandas as pd
import pytest
import torch

from pipeline.model.colorizer import Colorizer
from pipeline.testing.kills import RUN_TOKEN, processes_of
from pipeline.testing.workspace import edit_params, run, stages_run
from pipeline.versioning.rebuild import lock_entries
from tests.hostile import press_ctrl_c, start_as_in_a_terminal

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("stage", ["scrape", "clean"])  # local threads; a process pool
def test_ctrl_c_in_a_terminal_stops_dvc_repro_at_once_in_one_line_and_the_next_repro_finishes(project, stage):
    repo, env = project
    edit_params(repo, source={"per_category": 600})
    if stage == "clean":
        run(repo, env, "dvc", "repro", "scrape")
    alone = {key: value for key, value in env.items() if key != "PREFECT_API_URL"}  # each stage starts its own server
    staging = repo / "data" / (".raw.partial" if stage == "scrape" else ".clean.partial")
    lock = lock_entries(repo).get(stage)

    process = start_as_in_a_terminal(["dvc", "repro"], repo, alone)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(staging.glob("*/*.*"))) < 5 and process.poll() is None:
        time.sleep(0.1)
    output, seconds = press_ctrl_c(process)

    assert process.returncode != 0 and seconds < 10, (seconds, output)
    assert output.count(f"{stage}: interrupted; its output was not published") == 1, output
    assert "Traceback" not in output, output
    output = {"scrape": "data/raw", "clean": "data/clean"}[stage]
    assert not (repo / output).exists() and lock_entries(repo).get(stage) == lock  # nothing recorded as done
    made = {p.name: p.stat().st_mtime_ns for p in staging.glob("*/*") if p.parent.name != ".journal"}
    assert len(made) >= 5

    rerun = run(repo, env, "dvc", "repro", stage)
    assert stages_run(rerun.stdout) == {stage}
    assert len(pd.read_csv(repo / output / "manifest.csv")) > 0
    if stage == "scrape":  # resumed: files made before the interruption were not made again
        assert {p.name: p.stat().st_mtime_ns for p in (repo / output).glob("*/*") if p.name in made} == made


def test_a_stage_killed_alone_leaves_no_process_and_the_training_resumes_from_its_last_checkpoint(project):
    """SIGKILL to the stage's process only (the OOM killer's way): its temporary Prefect server and anything else it
    started end within seconds, and the next `dvc repro` resumes the training."""
    repo, env = project
    edit_params(repo, train={"epochs": 40})
    run(repo, env, "dvc", "repro", "split")
    token = uuid.uuid4().hex
    alone = {key: value for key, value in env.items() if key != "PREFECT_API_URL"} | {RUN_TOKEN: token}  # its own server
    process = subprocess.Popen([sys.executable, "-m", "flows.train"], cwd=repo, env=alone, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = repo / "data/models/checkpoint.pt"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not checkpoint.exists():
        time.sleep(0.2)
    started = processes_of(token)
    process.kill()  # SIGKILL: no chance to clean up
    process.wait(timeout=60)
    deadline = time.monotonic() + 5
    while processes_of(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(started) >= 2 and processes_of(token) == {}  # the stage and its temporary server, at least
    assert checkpoint.exists() and not (repo / "data/models/generator.pt").exists()
    reached = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= reached < 40
    resumed = run(repo, env, "dvc", "repro")
    assert f"resuming after epoch {reached} of 40" in resumed.stdout + resumed.stderr
    assert Colorizer.load(repo / "data/models/generator.pt").info["epochs"] == 40
    assert stages_run(resumed.stdout) == {"train", "evaluate"}
