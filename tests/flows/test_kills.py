"""`dvc repro` killed at the worst moments, again and again, then run to the end: nothing left running, no traceback,
and the same data/ as an uninterrupted run's (pipeline/testing/kills.py; benchmarks/bench_kills.py runs more kills)."""

from __future__ import annotations

import signal
import sys

import pytest

from pipeline.testing.kills import Harness, Kill, differences

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]

KILLS = [  # one chain, in the order of the stages; each run resumes what the one before it left
    Kill(write="scrape:journal:5"),
    Kill(write="clean:image:3"),
    Kill(write="split:image:7", signum=signal.SIGTERM),
    Kill(write="train:dvclive:15"),  # in epoch 2's curves (epoch 1, the L1 warm-up, has 6 curves and metrics.json)
    Kill(write="train:checkpoint:2"),  # resumed after epoch 1, checkpointed after each batch: epoch 2's second batch
    Kill(write="train:sample:1", signum=signal.SIGTERM),  # epoch 2's samples: it stops after the epoch's checkpoint
    Kill(write="train:checkpoint:1", signum=signal.SIGTERM),  # epoch 3's first batch: it stops after the next one
    Kill(write="train:generator:1"),
    Kill(write="evaluate:record:1"),
]


def test_dvc_repro_killed_in_the_middle_of_writes_in_every_stage_resumes_to_an_uninterrupted_runs_data(tmp_path, prefect_api_url):
    """Every run reports to the session's Prefect server: a stage's temporary server, which a kill of its stage may not
    leave running, has its own tests (tests/flows/test_temporary_server.py)."""
    harness = Harness(tmp_path, prefect_api_url)
    baseline, baseline_env = harness.workspace("uninterrupted")
    assert harness.repro(baseline, baseline_env).returncode == 0
    repo, env = harness.workspace("killed")

    runs = [harness.repro(repo, env, kill) for kill in KILLS]
    last = harness.repro(repo, env)

    assert {str(run.kill): run.problems for run in [*runs, last] if run.problems} == {}
    assert [run.landed for run in runs] == [kill.write.rsplit(":", 1)[0] for kill in KILLS]
    assert [run.seconds < 10 for run in runs if run.kill.signum == signal.SIGTERM] == [True, True, True]
    assert last.returncode == 0 and last.landed is None
    assert differences(baseline, repo, env) == []
