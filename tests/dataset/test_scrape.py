"""Scrape planning and its records: jobs planned as they are needed, every attempt written with its outcome."""

from __future__ import annotations

import time
import tracemalloc
from itertools import islice

import pandas as pd

from pipeline.config import parse_params
from pipeline.dataset.manifests import ATTEMPTS, MANIFEST, Attempt, RawFile
from pipeline.dataset.scrape import define_source, plan_units, write_raw_manifest
from pipeline.dataset.sources.base import Journal, Scraped
from pipeline.dataset.sources.params import MAX_PER_CATEGORY


def test_the_largest_synthetic_plan_is_made_lazily_in_constant_memory():
    """per_category 10^9 grew to 13.4 GB planning in memory; the bound is now 10^6, planned as the jobs are needed."""
    params = parse_params({"workers": 2, "source": {"per_category": MAX_PER_CATEGORY}})
    tracemalloc.start()
    started = time.monotonic()
    first = list(islice(plan_units(define_source(params.source, params.seed), params.source.categories, 1000), 3))
    elapsed, peak = time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(job.category, job.part, job.items[0], len(job.items)) for job in first] == [
        ("landscape", 0, 0, 1000), ("landscape", 1, 1000, 1000), ("landscape", 2, 2000, 1000)
    ]
    assert elapsed < 1 and peak < 1024 * 1024


def test_the_plan_covers_every_index_once_in_category_order():
    params = parse_params({"workers": 1, "source": {"categories": ["sky", "sea"], "per_category": 20}})
    jobs = list(plan_units(define_source(params.source, params.seed), params.source.categories, 7))
    assert [job.name for job in jobs] == ["sky-0", "sky-1", "sky-2", "sea-0", "sea-1", "sea-2"]
    assert [index for job in jobs if job.category == "sea" for index in job.items] == list(range(20))


def test_attempts_list_every_url_tried_with_its_outcome_and_the_counts_say_how_many(tmp_path):
    saved = RawFile("sky/a.jpg", "sky", "bing", "http://a/1.jpg", "0" * 64, 10)
    results = [
        Scraped([saved], [Attempt("sky", "http://a/2.jpg", "timeout", "transfer took longer than source.bing.timeout=15 s")]),
        Scraped([], [Attempt("sea", "http://b/1.jpg", "http_status", "HTTP 404 Not Found"), Attempt("sea", "ftp://b/2", "not_http", "not an http(s) URL")]),
    ]
    root = tmp_path
    (root / ".journal").mkdir()
    counts = write_raw_manifest(root, results)
    assert counts == {"sky": {"saved": 1, "timeout": 1}, "sea": {"saved": 0, "http_status": 1, "not_http": 1}}
    assert pd.read_csv(root / MANIFEST)["file"].tolist() == ["sky/a.jpg"]
    attempts = pd.read_csv(root / ATTEMPTS, keep_default_na=False)
    assert attempts.values.tolist() == [
        ["sky", "http://a/1.jpg", "saved", "", "sky/a.jpg"],
        ["sky", "http://a/2.jpg", "timeout", "transfer took longer than source.bing.timeout=15 s", ""],
        ["sea", "http://b/1.jpg", "http_status", "HTTP 404 Not Found", ""],
        ["sea", "ftp://b/2", "not_http", "not an http(s) URL", ""],
    ]
    assert not (root / ".journal").exists()


def test_a_journal_row_cut_short_by_a_kill_is_dropped_and_the_journal_goes_on(tmp_path):
    (tmp_path / "sky").mkdir()
    rows = [RawFile(f"sky/{name}.jpg", "sky", "synthetic", f"synthetic://sky/{name}", "0" * 64, 3) for name in "abc"]
    for row in rows:
        (tmp_path / row.file).write_bytes(b"abc")
    journal = Journal(tmp_path, "sky-0")
    journal.add(rows[0])
    journal.skip(Attempt("sky", "synthetic://sky/x", "unreadable", "gone"))
    with open(journal.path, "a") as torn:
        torn.write("sky/b.jpg,sky,synth")  # the kill came in the middle of this append
    with open(journal.skipped_path, "a") as torn:
        torn.write('sky,"synthetic://sky/y\nmore')  # in the middle of a quoted field, after a newline in it

    resumed = Journal(tmp_path, "sky-0")
    assert resumed.done() == rows[:1] and [attempt.source_url for attempt in resumed.skipped()] == ["synthetic://sky/x"]
    resumed.add(rows[2])
    assert Journal(tmp_path, "sky-0").done() == [rows[0], rows[2]]


def test_a_journal_whose_header_was_cut_short_starts_again_with_its_header(tmp_path):
    (tmp_path / "sky").mkdir()
    (tmp_path / "sky/a.jpg").write_bytes(b"abc")
    journal = Journal(tmp_path, "sky-0")
    journal.path.write_text("file,categ")  # killed while the first append wrote the header
    row = RawFile("sky/a.jpg", "sky", "synthetic", "synthetic://sky/a", "0" * 64, 3)
    Journal(tmp_path, "sky-0").add(row)
    assert Journal(tmp_path, "sky-0").done() == [row]
