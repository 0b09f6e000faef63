"""Progress reporting: every batch passes through unchanged, with a log line at each 10%."""

from __future__ import annotations

import logging

from pipeline.core.progress import track_batches


def test_batches_pass_through_and_progress_is_logged_every_tenth(caplog):
    batches = [[i] * 5 for i in range(20)]
    with caplog.at_level(logging.INFO, logger="pipeline.core.progress"):
        assert list(track_batches(iter(batches), 100, "work")) == batches
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 10
    assert lines[0].startswith("work: 10/100 img (10%") and lines[-1].startswith("work: 100/100 img (100%")
