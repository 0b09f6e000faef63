"""The `bing` source: search Bing Images for a category and download the results, resumably.

Built on bing-image-downloader: its request headers and filter names (`Bing`), its image check
(the signatures `web.image_extension` checks) and its way of reading result links (the `murl` of each result, HTML-unescaped).
Unlike the library, the search endpoint comes from params (so tests can use a local fake), the
downloads of a category run in parallel, and every outcome is journaled as soon as it is known.
Result pages are asked for with the library's parameters (q, first, count, adlt, qft), `first`
being the offset of the page's first result as Bing defines it (the library passes a page number
there, so from its second page on it mostly gets results it has already seen).

Every server is untrusted: result pages and images are fetched by `web.Downloader` (the whole transfer bounded
in time and size, redirects to http(s) only), and a stop request (Ctrl-C) abandons the transfers in flight at
once, keeping every image already received.
"""

from __future__ import annotations

import html
import logging
import random
import re
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from bing_image_downloader.bing import Bing

from pipeline.core.errors import PipelineError, Stopped
from pipeline.core.fsutil import category_slug
from pipeline.dataset.manifests import Attempt, RawFile
from pipeline.dataset.sources.base import Journal, RawOutput, Scraped, Source, Unit, save_raw
from pipeline.dataset.sources.params import BingParams
from pipeline.dataset.web import Downloader, FetchError, file_name, request_url

log = logging.getLogger(__name__)

SOURCE = "bing"
PAGE_SIZE = 35  # results Bing's async endpoint returns per page
MAX_PAGES = 50
RETRY_AFTER_CAP = 120.0  # seconds: the longest wait a server's Retry-After can ask of a result page
BACKOFF_SECONDS = 2.0  # a failed result page's first retry comes after about this long, doubling each time (jittered)

# As in bing_image_downloader.bing.Bing.run / Bing.download_image (inline there, so not importable).
_MURL = re.compile(r"murl&quot;:&quot;(.*?)&quot;")


class BingSource(Source[BingParams]):
    """per_category images per category from Bing's results for the category's name: one unit per category."""

    Params = BingParams

    @property
    def network_threads(self) -> int:
        return self.params.concurrent_categories

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[str]]:
        yield ()

    def fetch(self, unit: Unit, output: RawOutput, stop: threading.Event | None) -> Scraped:
        return scrape_bing(unit.category, output.root, self.per_category, self.params, stop)

    def describe(self) -> str:
        return f"Bing Images at {self.params.endpoint}"


class BingPageError(PipelineError):
    """A result page could not be fetched, even after retries (the category resumes from its journal next run)."""


def scrape_bing(category: str, root: Path, count: int, cfg: BingParams, stop: threading.Event | None = None) -> Scraped:
    """Make sure root/<category>/ holds `count` Bing images for the query `category`; return their rows, in order of
    discovery, and the links that could not be saved, with why.

    Files saved by an earlier, interrupted run (see `Journal`) are kept and not fetched again. Raises BingPageError
    when a result page cannot be fetched after `cfg.retries` retries, and Stopped within about web.WATCH_INTERVAL of `stop`
    being set: the transfers in flight are abandoned, and the images already received are saved first.
    """
    journal = Journal(root, category)
    rows = _journaled(journal)
    if len(rows) >= count:
        log.info("bing %r: %d images already saved", category, count)
        return Scraped(rows[:count], _skipped(journal, rows[:count]))
    known = {row.source_url for row in rows}
    log.info("bing %r: %d images saved earlier, fetching %d more", category, len(rows), count - len(rows))
    with _Client(category, cfg, stop or threading.Event()) as client, ThreadPoolExecutor(
        cfg.downloads_per_category, thread_name_prefix=f"bing-{category_slug(category)}"
    ) as pool:
        order: dict[str, int] = {}  # link -> its place in Bing's results

        def new_links() -> Iterator[str]:
            for url in client.links():
                order.setdefault(url, len(order))
                if url not in known:
                    yield url

        links = new_links()
        pending: dict[Future[bytearray], str] = {}  # download -> its link
        failure: BingPageError | None = None
        try:
            while True:
                while failure is None and len(pending) + len(rows) < count:  # nothing is fetched in vain
                    try:
                        link = next(links)
                    except StopIteration:
                        break
                    except BingPageError as exc:  # save what is in flight first
                        failure = exc
                        break
                    pending[pool.submit(client.image, link)] = link
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda done_future: order[pending[done_future]]):  # recorded as soon as known
                    _record(journal, rows, root, category, pending.pop(future), future)
                _log_progress(category, len(rows), count)
        except Stopped:
            client.abandon()
            for future, link in pending.items():  # already received, or abandoned just now
                if future.exception() is None:
                    _record(journal, rows, root, category, link, future)
            raise Stopped(f"bing {category!r}: stopped with {len(rows)} of {count} images saved") from None
    if failure is not None:
        raise failure
    if len(rows) < count:
        log.warning("bing %r: only %d of %d images found", category, len(rows), count)
    in_order = sorted(rows, key=lambda row: order.get(row.source_url, -1))  # as Bing listed them, not as they arrived
    journal.reorder(in_order)  # so a later run that needs no fetch returns the same order
    return Scraped(in_order, _skipped(journal, rows))


def _record(journal: Journal, rows: list[RawFile], root: Path, category: str, link: str, future: Future[bytearray]) -> None:
    """Save and journal the image a finished download brought, or journal (and log) why there is none; Stopped passes."""
    try:
        data = future.result()
    except FetchError as exc:
        log.warning("bing %r: skipped %s: %s: %s", category, link, exc.reason, exc)
        journal.skip(Attempt(category, link, exc.reason, str(exc)))
        return
    row = save_raw(root, category, file_name(link, data), data, SOURCE, link)
    journal.add(row)
    rows.append(row)


def _skipped(journal: Journal, saved: list[RawFile]) -> list[Attempt]:
    """The latest failure of each link that is not among `saved`, in order of first failure."""
    saved_urls = {row.source_url for row in saved}
    return list({attempt.source_url: attempt for attempt in journal.skipped() if attempt.source_url not in saved_urls}.values())


def _journaled(journal: Journal) -> list[RawFile]:
    """The journal's rows whose files are present, one per URL (the latest), in first-seen order."""
    return list({row.source_url: row for row in journal.done()}.values())


def _log_progress(category: str, saved: int, count: int) -> None:
    if saved == count or saved % max(1, count // 10) == 0:
        log.info("bing %r: %d/%d images", category, saved, count)


class _Client:
    """Bing for one category: result pages and image downloads, each one a watched transfer (see `web.Downloader`).
    Used as a context manager (the downloader's watchdog)."""

    def __init__(self, category: str, cfg: BingParams, stop: threading.Event) -> None:
        adult = "on" if cfg.adult_filter else "off"
        library = Bing(category, PAGE_SIZE, None, adult, cfg.timeout, cfg.filter, verbose=False)
        self.category = category
        self.cfg = cfg
        self.adult = adult
        self.qft = library.get_filter(cfg.filter)
        self.stop = stop
        self.web = Downloader(f"bing {category!r}", "source.bing", cfg.timeout, cfg.max_bytes, stop, library.headers)
        self.image = self.web.image
        self.abandon = self.web.abandon
        self._random = random.Random()

    def __enter__(self) -> _Client:
        self.web.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.__exit__(*exc)

    def links(self) -> Iterator[str]:
        """Result links (each once), page after page, until a page brings nothing new."""
        seen: set[str] = set()
        first = 0
        for number in range(1, MAX_PAGES + 1):
            found = self.page_links(first)
            new = [url for url in dict.fromkeys(found) if url not in seen]
            log.info("bing %r: page %d (first=%d): %d links, %d new", self.category, number, first, len(found), len(new))
            if not new:
                return
            seen.update(new)
            first += len(found)
            yield from new
        log.info("bing %r: stopped after %d result pages", self.category, MAX_PAGES)

    def page_links(self, first: int) -> list[str]:
        """The image links on the result page that starts at result `first`; a transient failure (timeout, network,
        429, 5xx) is retried up to `retries` times, after the server's Retry-After (capped) or a jittered backoff."""
        params = {"q": self.category, "first": first, "count": PAGE_SIZE, "adlt": self.adult, "qft": self.qft}
        url = f"{self.cfg.endpoint}?{urllib.parse.urlencode(params)}"
        for attempt in range(self.cfg.retries + 1):
            try:
                page = self.web.fetch(url).decode("utf-8", errors="replace")
                return [request_url(html.unescape(link)) for link in _MURL.findall(page)]
            except FetchError as exc:
                if attempt == self.cfg.retries or not exc.transient:
                    raise BingPageError(f"bing {self.category!r}: cannot fetch result page {url}: {exc}") from None
                delay = self._retry_delay(exc, attempt)
                log.warning("bing %r: result page %s: %s; retry %d of %d in %.1f s", self.category, url, exc, attempt + 1, self.cfg.retries, delay)
                if self.stop.wait(delay):
                    raise Stopped(f"bing {self.category!r}: stopped") from None
        raise AssertionError("unreachable")

    def _retry_delay(self, exc: FetchError, attempt: int) -> float:
        """The server's Retry-After, capped at RETRY_AFTER_CAP; else exponential backoff with jitter (0.5-1.5×)."""
        if exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP)
        return min(BACKOFF_SECONDS * 2**attempt * self._random.uniform(0.5, 1.5), RETRY_AFTER_CAP)
