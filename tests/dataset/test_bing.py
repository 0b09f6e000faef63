"""The bing source, end to end against a fake Bing server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bing_image_downloader import downloader

from pipeline.core.errors import Stopped
from pipeline.dataset.sources import bing
from pipeline.dataset.sources.base import Journal
from pipeline.dataset.sources.bing import BingPageError, BingParams, scrape_bing
from pipeline.testing.fakebing import FakeBing, redirect_library

QUERY = "red car"
BROKEN = {2: "html", 3: "404", 5: "ftp", 6: "file", 8: "redirect_ftp"}
# What a scrape of the fake's first 12 results keeps: good images, the truncated JPEG (4), and the PNG without extension (7).
KEPT = [0, 1, 4, 7, 9, 10, 11]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never use a proxy, and fail if anything tries ftp:// or file://."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def refuse(self: object, request: urllib.request.Request) -> None:
        raise AssertionError(f"non-http URL opened: {request.full_url}")

    monkeypatch.setattr(urllib.request.FTPHandler, "ftp_open", refuse)
    monkeypatch.setattr(urllib.request.FileHandler, "file_open", refuse)


@pytest.fixture
def fake() -> Iterator[FakeBing]:
    special = {**BROKEN, 4: "truncated", 7: "noext"}
    with FakeBing(images_per_query=12, special=special, page_size=5) as server:
        yield server


def config(fake: FakeBing, **overrides: object) -> BingParams:
    return BingParams(**{"endpoint": fake.endpoint, "timeout": 2, "downloads_per_category": 4, **overrides})


def image_path(fake: FakeBing, index: int) -> str:
    return urllib.parse.urlsplit(fake.image_url(QUERY, index)).path


def test_saves_images_untouched_with_provenance(fake: FakeBing, tmp_path: Path) -> None:
    rows = scrape_bing(QUERY, tmp_path, 100, config(fake)).files

    assert [row.source_url for row in rows] == [fake.image_url(QUERY, i) for i in KEPT]
    for index, row in zip(KEPT, rows, strict=True):
        data = (tmp_path / row.file).read_bytes()
        assert data == fake.body(QUERY, index)
        assert (row.sha256, row.bytes) == (hashlib.sha256(data).hexdigest(), len(data))
        assert (row.category, row.source) == (QUERY, "bing")
        stem = hashlib.sha1(row.source_url.encode()).hexdigest()[:16]
        assert row.file == f"red_car/{stem}.{'png' if index in (1, 7, 9, 11) else 'jpg'}"
    assert sorted(p.name for p in (tmp_path / "red_car").iterdir()) == sorted(Path(row.file).name for row in rows)
    assert sorted(Journal(tmp_path, QUERY).done(), key=rows.index) == rows  # journaled as they arrived


def test_broken_and_non_http_links_are_skipped_logged_and_recorded_with_their_reason(
    fake: FakeBing, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pipeline.dataset.sources.bing"):
        skipped = scrape_bing(QUERY, tmp_path, 100, config(fake)).skipped

    warnings = "\n".join(record.getMessage() for record in caplog.records)
    assert f"{fake.image_url(QUERY, 2)}: not_an_image: not an image" in warnings
    assert f"{fake.image_url(QUERY, 3)}: http_status: HTTP 404" in warnings
    assert f"{fake.image_url(QUERY, 8)}: redirect_refused: HTTP 302 redirect to non-http URL" in warnings
    assert "ftp://127.0.0.1/img/red%20car/5.jpg: not_http: not an http(s) URL" in warnings
    assert "file:///etc/passwd: not_http: not an http(s) URL" in warnings
    assert [(a.source_url, a.outcome) for a in skipped] == [
        (fake.image_url(QUERY, 2), "not_an_image"), (fake.image_url(QUERY, 3), "http_status"), (fake.image_url(QUERY, 5), "not_http"),
        (fake.image_url(QUERY, 6), "not_http"), (fake.image_url(QUERY, 8), "redirect_refused"),
    ]
    assert skipped[1].detail == "HTTP 404 Not Found" and {a.category for a in skipped} == {QUERY}
    # _loopback_only fails the test if ftp:// or file:// is ever opened (directly or by redirect).


def test_count_is_respected_without_extra_downloads(tmp_path: Path) -> None:
    with FakeBing(images_per_query=30, page_size=5) as server:
        rows = scrape_bing(QUERY, tmp_path, 7, config(server)).files
        assert len(rows) == 7
        assert len(server.image_requests()) == 7
        assert [p["first"] for p in server.page_requests()] == ["0", "5"]
    assert len(list((tmp_path / "red_car").iterdir())) == 7


def test_resume_keeps_earlier_files_and_does_not_fetch_them_again(fake: FakeBing, tmp_path: Path) -> None:
    first = scrape_bing(QUERY, tmp_path, 5, config(fake)).files
    stats = {row.file: (tmp_path / row.file).stat().st_mtime_ns for row in first}
    fake.requests.clear()

    second = scrape_bing(QUERY, tmp_path, 10, config(fake)).files

    assert second[:5] == first
    assert len(second) == len(KEPT)  # all the fake has
    assert {row.file: (tmp_path / row.file).stat().st_mtime_ns for row in first} == stats
    requested = fake.image_requests()
    assert not set(requested) & {urllib.parse.urlsplit(row.source_url).path for row in first}
    assert requested  # the rest was fetched

    fake.requests.clear()
    assert scrape_bing(QUERY, tmp_path, 3, config(fake)).files == first[:3]
    assert fake.requests == []  # enough on disk: no request at all


def test_order_is_bings_even_when_downloads_finish_out_of_order(tmp_path: Path) -> None:
    with FakeBing(images_per_query=6, special={0: "slow"}, slow_seconds=0.5) as server:
        rows = scrape_bing(QUERY, tmp_path, 6, config(server)).files
        assert [row.source_url for row in rows] == [server.image_url(QUERY, index) for index in range(6)]
        server.requests.clear()
        assert scrape_bing(QUERY, tmp_path, 4, config(server)).files == rows[:4]  # from the journal alone
        assert server.requests == []


def test_missing_file_is_fetched_again(fake: FakeBing, tmp_path: Path) -> None:
    rows = scrape_bing(QUERY, tmp_path, 3, config(fake)).files
    (tmp_path / rows[1].file).unlink()

    again = scrape_bing(QUERY, tmp_path, 3, config(fake)).files

    assert {row.source_url for row in again} == {row.source_url for row in rows}
    assert (tmp_path / rows[1].file).read_bytes() == fake.body(QUERY, 1)


def test_page_error_raises_after_the_retries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bing, "BACKOFF_SECONDS", 0.05)
    with FakeBing(page_error_from=0) as server:
        with pytest.raises(BingPageError, match=r"cannot fetch result page .*first=0.*HTTP 500"):
            scrape_bing(QUERY, tmp_path, 5, config(server, retries=2))
        assert len(server.page_requests()) == 3


def test_unreachable_endpoint_raises(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = BingParams(endpoint=f"http://127.0.0.1:{port}/images/async", timeout=2, retries=0)
    with pytest.raises(BingPageError, match=rf"cannot fetch result page http://127.0.0.1:{port}/.*refused"):
        scrape_bing(QUERY, tmp_path, 5, cfg)


def test_page_failure_keeps_finished_downloads_and_the_retry_resumes(tmp_path: Path) -> None:
    with FakeBing(images_per_query=12, page_size=4, page_error_from=4) as server:
        with pytest.raises(BingPageError):
            scrape_bing(QUERY, tmp_path, 10, config(server, retries=0))
        saved = Journal(tmp_path, QUERY).done()
        assert sorted(row.source_url for row in saved) == sorted(server.image_url(QUERY, i) for i in range(4))

        server.page_error_from = None
        server.requests.clear()
        rows = scrape_bing(QUERY, tmp_path, 10, config(server)).files

        assert [row.source_url for row in rows] == [server.image_url(QUERY, i) for i in range(10)]
        assert len(server.image_requests()) == 6


def test_a_stop_request_ends_the_category_soon_and_keeps_what_was_saved(tmp_path: Path) -> None:
    with FakeBing(images_per_query=60, latency=0.1) as server:
        stop = threading.Event()
        timer = threading.Timer(0.5, stop.set)
        timer.start()
        started = time.monotonic()
        with pytest.raises(Stopped, match="stopped with"):
            scrape_bing(QUERY, tmp_path, 60, config(server, downloads_per_category=2), stop)
        assert time.monotonic() - started < 2  # 60 downloads at 2 x 10/s would take 3 s
        saved = Journal(tmp_path, QUERY).done()
        assert 0 < len(saved) < 60
        assert sorted(p.name for p in (tmp_path / "red_car").iterdir()) == sorted(Path(r.file).name for r in saved)


def test_slow_download_is_skipped_not_waited_for(tmp_path: Path) -> None:
    with FakeBing(images_per_query=4, special={1: "slow"}, slow_seconds=5) as server:
        started = time.monotonic()
        rows = scrape_bing(QUERY, tmp_path, 4, config(server, timeout=1)).files
        assert time.monotonic() - started < 3
        assert [row.source_url for row in rows] == [server.image_url(QUERY, i) for i in (0, 2, 3)]


def test_stops_after_max_pages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bing, "MAX_PAGES", 3)
    with FakeBing(images_per_query=100, special=dict.fromkeys(range(100), "404"), page_size=2) as server:
        assert scrape_bing(QUERY, tmp_path, 5, config(server)).files == []
        assert len(server.page_requests()) == 3


def test_page_params_match_the_library(fake: FakeBing, tmp_path: Path) -> None:
    """The library, redirected to the fake, and scrape_bing ask for result pages the same way."""
    with redirect_library(fake.endpoint) as opened:
        downloader.download(QUERY, limit=2, output_dir=str(tmp_path / "lib"), adult_filter_off=False,
                            timeout=2, filter="photo", verbose=False)
    assert all(url.startswith("http://127.0.0.1:") for url in opened)
    library_page = fake.page_requests()[0]
    fake.requests.clear()

    scrape_bing(QUERY, tmp_path / "ours", 2, config(fake, adult_filter=True, filter="photo"))
    our_page = fake.page_requests()[0]

    assert list(our_page) == list(library_page) == ["q", "first", "count", "adlt", "qft"]
    assert {k: our_page[k] for k in ("q", "first", "adlt", "qft")} == {
        "q": QUERY, "first": "0", "adlt": "on", "qft": "+filterui:photo-photo"
    } == {k: library_page[k] for k in ("q", "first", "adlt", "qft")}


def test_redirect_library_refuses_other_hosts(fake: FakeBing) -> None:
    with redirect_library(fake.endpoint), pytest.raises(RuntimeError, match="refusing"):
        urllib.request.urlopen("http://example.com/x.jpg")


HOSTILE = {1: "drip_headers", 2: "drip_body", 3: "drip_chunked", 4: "slow_redirects", 5: "huge", 6: "endless", 7: "short"}


@pytest.mark.slow
def test_hostile_servers_are_bounded_by_the_timeout_and_max_bytes_and_recorded(tmp_path: Path) -> None:
    """Each of these held a download slot for 44-60 s (or forever) when only reads were timed."""
    with FakeBing(images_per_query=9, special=HOSTILE, drip_seconds=0.4) as server:
        started = time.monotonic()
        result = scrape_bing(QUERY, tmp_path, 9, config(server, timeout=2, max_bytes=200_000, downloads_per_category=8))
        elapsed = time.monotonic() - started
        urls = [server.image_url(QUERY, i) for i in (0, 8)]
    assert elapsed < 4  # all in parallel: one timeout (2 s) and the watchdog's reaction, not a drip's whole length
    assert [row.source_url for row in result.files] == urls
    outcomes = {int(Path(a.source_url).stem): (a.outcome, a.detail) for a in result.skipped}
    assert {index: outcome for index, (outcome, _) in outcomes.items()} == {
        1: "timeout", 2: "timeout", 3: "timeout", 4: "timeout", 5: "too_large", 6: "too_large", 7: "short_body"
    }
    assert outcomes[1][1] == "transfer took longer than source.bing.timeout=2 s"
    assert outcomes[5][1] == "Content-Length 2147483648 > source.bing.max_bytes=200000"
    assert outcomes[6][1] == "more than source.bing.max_bytes=200000 bytes"
    assert outcomes[7][1].startswith("body cut short: ")
    assert sorted(p.name for p in (tmp_path / "red_car").iterdir()) == sorted(Path(row.file).name for row in result.files)


def test_a_huge_body_is_refused_at_the_header_without_reading_it(tmp_path: Path) -> None:
    with FakeBing(images_per_query=1, special={0: "huge"}) as server:
        result = scrape_bing(QUERY, tmp_path, 1, config(server, timeout=30))
    assert [a.outcome for a in result.skipped] == ["too_large"]


def test_a_stop_abandons_transfers_in_flight_at_once_and_keeps_the_images_behind_a_slow_one(tmp_path: Path) -> None:
    with FakeBing(images_per_query=4, special={0: "drip_body"}, drip_seconds=0.5) as server:
        stop = threading.Event()
        threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped, match="stopped with 3 of 4 images saved"):
            scrape_bing(QUERY, tmp_path, 4, config(server, timeout=60, downloads_per_category=4), stop)
        assert time.monotonic() - started < 2  # the dripping download was abandoned, not waited for
        saved = Journal(tmp_path, QUERY).done()
        assert sorted(row.source_url for row in saved) == sorted(server.image_url(QUERY, i) for i in (1, 2, 3))  # while 0 dripped
    assert sorted(p.name for p in (tmp_path / "red_car").iterdir()) == sorted(Path(row.file).name for row in saved)


def test_a_throttled_result_page_is_retried_after_the_servers_retry_after(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with FakeBing(images_per_query=2) as server:
        server.page_refusals = [(429, "1")]
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="pipeline.dataset.sources.bing"):
            rows = scrape_bing(QUERY, tmp_path, 2, config(server)).files
        assert time.monotonic() - started >= 1
    assert len(rows) == 2 and len(server.page_requests()) == 2
    assert any("HTTP 429 Too Many Requests; retry 1 of 2 in 1.0 s" in record.getMessage() for record in caplog.records)


def test_retry_after_is_capped_and_other_failures_back_off_with_jitter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bing, "RETRY_AFTER_CAP", 0.3)
    monkeypatch.setattr(bing, "BACKOFF_SECONDS", 0.2)
    with FakeBing(images_per_query=2) as server:
        server.page_refusals = [(503, "3600"), (503, None), (503, None)]
        with caplog.at_level(logging.WARNING, logger="pipeline.dataset.sources.bing"):
            rows = scrape_bing(QUERY, tmp_path, 2, config(server, retries=3)).files
    assert len(rows) == 2
    delays = [float(re.search(r"in ([\d.]+) s$", r.getMessage())[1]) for r in caplog.records if "retry" in r.getMessage()]
    assert delays[0] == 0.3  # Retry-After: 3600, capped
    assert 0.1 <= delays[1] <= 0.3 and 0.2 <= delays[2] <= 0.6  # 0.2 s, then 0.4 s, each 0.5-1.5×


def test_a_client_error_on_a_result_page_is_not_retried(tmp_path: Path) -> None:
    with FakeBing(images_per_query=2) as server:
        server.page_refusals = [(403, None)]
        with pytest.raises(BingPageError, match="HTTP 403"):
            scrape_bing(QUERY, tmp_path, 2, config(server))
        assert len(server.page_requests()) == 1
