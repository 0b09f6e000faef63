"""The `bing` source: search Bing Images for a category and download the results, resumably.

Built on bing-image-downloader: its request headers and filter names (`Bing`), its image check
(`_is_valid_image`) and its way of reading result links (the `murl` of each result, HTML-unescaped).
Unlike the library, the search endpoint comes from params (so tests can use a local fake), the
downloads of a category run in parallel, and every file is journaled as soon as it is saved.
Result pages are asked for with the library's parameters (q, first, count, adlt, qft), `first`
being the offset of the page's first result as Bing defines it (the library passes a page number
there, so from its second page on it mostly gets results it has already seen).
"""

from __future__ import annotations

import hashlib
import html
import http.client
import logging
import posixpath
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bing_image_downloader.bing import Bing, _is_valid_image

from pipeline.config import BingSource, category_slug
from pipeline.errors import PipelineError, Stopped
from pipeline.sources.base import Journal, RawFile, save_raw

log = logging.getLogger(__name__)

SOURCE = "bing"
PAGE_SIZE = 35  # results Bing's async endpoint returns per page
MAX_PAGES = 50
_CHUNK = 1 << 16
FETCH_ERRORS = (OSError, ValueError, http.client.HTTPException)  # network, HTTP status, bad URL or response

# As in bing_image_downloader.bing.Bing.run / Bing.download_image (inline there, so not importable).
_MURL = re.compile(r"murl&quot;:&quot;(.*?)&quot;")
URL_EXTENSIONS = frozenset({"jpe", "jpeg", "jfif", "exif", "tiff", "gif", "bmp", "png", "webp", "jpg"})

# File extension for each magic-byte prefix that `_is_valid_image` accepts.
_MAGIC_EXTENSIONS = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF8", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"RIFF", "webp"),
)


class BingPageError(PipelineError):
    """A result page could not be fetched; the category should be retried (it resumes from its journal)."""


def scrape_bing(category: str, root: Path, count: int, cfg: BingSource, stop: threading.Event | None = None) -> list[RawFile]:
    """Make sure root/<category>/ holds `count` Bing images for the query `category`; return their rows.

    Files saved by an earlier, interrupted run (see `Journal`) are kept and not fetched again. Rows
    come in order of discovery. Raises BingPageError when a result page cannot be fetched, and
    Stopped soon after `stop` is set (downloads not yet started are dropped).
    """
    journal = Journal(root, category)
    rows = _journaled(journal)
    if len(rows) >= count:
        log.info("bing %r: %d images already saved", category, count)
        return rows[:count]
    known = {row.source_url for row in rows}
    client = _Client(category, cfg)
    log.info("bing %r: %d images saved earlier, fetching %d more", category, len(rows), count - len(rows))
    with ThreadPoolExecutor(cfg.downloads_per_category, thread_name_prefix=f"bing-{category_slug(category)}") as pool:
        new_links = (url for url in client.links() if url not in known)
        for url, data in _downloads(pool, client.image, new_links, count - len(rows)):
            if stop is not None and stop.is_set():
                pool.shutdown(cancel_futures=True)
                raise Stopped(f"bing {category!r}: stopped with {len(rows)} of {count} images saved")
            row = save_raw(root, category, file_name(url, data), data, SOURCE, url)
            journal.add(row)
            rows.append(row)
            _log_progress(category, len(rows), count, url)
    if len(rows) < count:
        log.warning("bing %r: only %d of %d images found", category, len(rows), count)
    return rows


def file_name(url: str, data: bytes) -> str:
    """`<first 16 hex of sha1(url)>.<ext>`: ext from the URL when it names an image type, else from the bytes."""
    stem = hashlib.sha1(url.encode()).hexdigest()[:16]
    ext = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lstrip(".").lower()
    return f"{stem}.{ext if ext in URL_EXTENSIONS else _magic_extension(data)}"


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _journaled(journal: Journal) -> list[RawFile]:
    """The journal's rows whose files are present, one per URL (the latest), in first-seen order."""
    return list({row.source_url: row for row in journal.done()}.values())


def _magic_extension(data: bytes) -> str:
    return next(ext for magic, ext in _MAGIC_EXTENSIONS if data.startswith(magic))


def _downloads(
    pool: ThreadPoolExecutor, fetch: Callable[[str], bytes | None], links: Iterator[str], limit: int
) -> Iterator[tuple[str, bytes]]:
    """Fetch `links` on `pool`; yield (url, data) for the good ones, in link order, at most `limit`.

    Never more than `limit` downloads are done or in flight, so nothing is fetched in vain. When
    `links` fails (a result page could not be read), the downloads already started are yielded
    before the error is raised, so that they are saved.
    """
    pending: deque[tuple[str, Future[bytes | None]]] = deque()
    yielded = 0
    failure: BingPageError | None = None
    while True:
        while failure is None and len(pending) + yielded < limit:
            try:
                link = next(links)
            except StopIteration:
                break
            except BingPageError as exc:
                failure = exc
                break
            pending.append((link, pool.submit(fetch, link)))
        if not pending:
            break
        link, future = pending.popleft()
        if (data := future.result()) is not None:
            yielded += 1
            yield link, data
    if failure is not None:
        raise failure


def _log_progress(category: str, saved: int, count: int, url: str) -> None:
    log.debug("bing %r: saved %s", category, url)
    if saved == count or saved % max(1, count // 10) == 0:
        log.info("bing %r: %d/%d images", category, saved, count)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would also follow them to ftp://)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not is_http(newurl):
            raise urllib.error.HTTPError(newurl, code, f"redirect to non-http URL {newurl!r} refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Client:
    """Bing requests for one category: result pages and image downloads."""

    def __init__(self, category: str, cfg: BingSource) -> None:
        adult = "on" if cfg.adult_filter else "off"
        library = Bing(category, PAGE_SIZE, None, adult, cfg.timeout, cfg.filter, verbose=False)
        self.category = category
        self.endpoint = cfg.endpoint
        self.timeout = cfg.timeout
        self.headers = library.headers
        self.adult = adult
        self.qft = library.get_filter(cfg.filter)
        self.opener = urllib.request.build_opener(_HttpOnlyRedirects)

    def links(self) -> Iterator[str]:
        """Result links (http only, each once), page after page, until a page brings nothing new."""
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
            yield from self._http_only(new)
        log.info("bing %r: stopped after %d result pages", self.category, MAX_PAGES)

    def page_links(self, first: int) -> list[str]:
        """The image links on the result page that starts at result `first`."""
        params = {"q": self.category, "first": first, "count": PAGE_SIZE, "adlt": self.adult, "qft": self.qft}
        url = f"{self.endpoint}?{urllib.parse.urlencode(params)}"
        try:
            page = self._get(url).decode("utf-8", errors="replace")
        except FETCH_ERRORS as exc:
            raise BingPageError(f"bing {self.category!r}: cannot fetch result page {url}: {_reason(exc)}") from exc
        return [_request_url(html.unescape(link)) for link in _MURL.findall(page)]

    def image(self, url: str) -> bytes | None:
        """The image at `url`, or None (logged) when it cannot be fetched or is not an image."""
        try:
            data = self._get(url)
        except FETCH_ERRORS as exc:
            log.warning("bing %r: skipped %s: %s", self.category, url, _reason(exc))
            return None
        if not _is_valid_image(data):
            log.warning("bing %r: skipped %s: not an image (starts with %r)", self.category, url, data[:16])
            return None
        return data

    def _get(self, url: str) -> bytes:
        """The body at `url`; the whole transfer must finish within the timeout."""
        deadline = time.monotonic() + self.timeout
        chunks = []
        request = urllib.request.Request(url, headers=self.headers)
        try:
            response = self.opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            exc.close()  # the status is all we need: release the connection now
            raise
        with response:
            while chunk := response.read(_CHUNK):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"transfer took longer than {self.timeout} s")
        return b"".join(chunks)

    def _http_only(self, urls: list[str]) -> Iterator[str]:
        for url in urls:
            if is_http(url):
                yield url
            else:
                log.warning("bing %r: skipped %s: not an http(s) URL", self.category, url)


def _request_url(link: str) -> str:
    """`link` with spaces and non-ASCII characters percent-encoded (existing escapes kept).

    A link too malformed to parse is returned as it is: fetching it fails, and it is skipped then.
    """
    try:
        parts = urllib.parse.urlsplit(link)
    except ValueError:
        return link
    path = urllib.parse.quote(parts.path, safe="/%:@!$&'()*+,;=~")
    query = urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def _reason(exc: BaseException) -> str:
    """A short reason for a failed request: the HTTP status or the network error."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
