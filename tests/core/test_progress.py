"""Progress reporting: every batch passes through unchanged, with a log line at each 10% (from where a resumed run starts)."""

from __future__ import annotations

import logging

from pipeline.core.progress import Progress, track_batches


def test_batches_pass_through_and_progress_is_logged_every_tenth(caplog):
    batches = [[i] * 5 for i in range(20)]
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        assert list(track_batches(iter(batches), 100, "work")) == batches
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 10
    assert lines[0].startswith("work: 10/100 img (10%") and lines[-1].startswith("work: 100/100 img (100%")


def test_progress_resumed_midway_logs_the_tenths_left_with_its_figures(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        with Progress(10, "train: epoch 1/2", "batch", initial=5) as progress:
            for _ in range(5):
                progress.update(l1="0.089")
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [f"train: epoch 1/2: {done}/10 batch" for done in range(6, 11)]
    assert all(line.endswith(", l1 0.089)") for line in lines)


def test_a_quiet_progress_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        with Progress(4, "train: epoch 1/1", "batch", quiet=True) as progress:
            for _ in range(4):
                progress.update()
    assert not caplog.records
