"""The `bing` source: search Bing Images for a category and download the results, resumably.

Built on bing-image-downloader: its request headers and filter names (`Bing`), its image check
(`_is_valid_image`) and its way of reading result links (the `murl` of each result, HTML-unescaped).
Unlike the library, the search endpoint comes from params (so tests can use a local fake), the
downloads of a category run in parallel, and every outcome is journaled as soon as it is known.
Result pages are asked for with the library's parameters (q, first, count, adlt, qft), `first`
being the offset of the page's first result as Bing defines it (the library passes a page number
there, so from its second page on it mostly gets results it has already seen).

Every server is untrusted: `timeout` bounds the whole transfer of one URL (connection, headers, redirects and
body: a watchdog shuts the sockets of a transfer that overruns, however slowly the server drips), `max_bytes`
bounds its size, a body cut short is a failure, and a stop request (Ctrl-C) abandons the transfers in flight
at once, keeping every image already received.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import http.client
import logging
import posixpath
import random
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from bing_image_downloader.bing import Bing, _is_valid_image
from pydantic import Field, field_validator

from pipeline.core.errors import PipelineError, Stopped
from pipeline.core.fsutil import category_slug
from pipeline.core.schema import StrictModel
from pipeline.dataset.sources.base import Attempt, Journal, RawFile, Scraped, Source, Unit, save_raw

log = logging.getLogger(__name__)

SOURCE = "bing"
PAGE_SIZE = 35  # results Bing's async endpoint returns per page
MAX_PAGES = 50
MAX_REDIRECTS = 5
RETRY_AFTER_CAP = 120.0  # seconds: the longest wait a server's Retry-After can ask of a result page
BACKOFF_SECONDS = 2.0  # a failed result page's first retry comes after about this long, doubling each time (jittered)
WATCH_INTERVAL = 0.1  # seconds between the watchdog's checks of deadlines and of the stop request
_CHUNK = 1 << 16
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}

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


class BingParams(StrictModel):
    """source.bing"""

    endpoint: str = "https://www.bing.com/images/async"
    timeout: Annotated[int, Field(ge=1)] = 15  # seconds for the whole transfer of one URL (redirects included)
    max_bytes: Annotated[int, Field(ge=1024)] = 20_000_000  # a larger image is refused (at the header when it says so)
    retries: Annotated[int, Field(ge=0)] = 2  # per result page, on timeouts, network errors, 429 and 5xx
    concurrent_categories: Annotated[int, Field(ge=1)] = 4
    downloads_per_category: Annotated[int, Field(ge=1)] = 8
    adult_filter: bool = True
    filter: Literal["", "photo", "line", "clipart", "gif", "animatedgif", "transparent"] = "photo"

    @field_validator("endpoint")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class BingSource(Source[BingParams]):
    """per_category images per category from Bing's results for the category's name: one unit per category."""

    name = SOURCE
    Params = BingParams

    @property
    def network_threads(self) -> int:
        return self.params.concurrent_categories

    def plan(self, category: str, batch_size: int) -> Iterator[Sequence[str]]:
        yield ()

    def fetch(self, unit: Unit, root: Path, stop: threading.Event | None) -> Scraped:
        return scrape_bing(unit.category, root, self.per_category, self.params, stop)

    def describe(self) -> str:
        return f"Bing Images at {self.params.endpoint}"


class BingPageError(PipelineError):
    """A result page could not be fetched, even after retries (the category resumes from its journal next run)."""


class FetchError(Exception):
    """One URL was not fetched: `reason` is the outcome recorded in attempts.csv, the message its detail."""

    def __init__(self, reason: str, detail: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.status = status  # the HTTP status, for reason "http_status"
        self.retry_after = retry_after  # seconds the server asked us to wait (HTTP Retry-After)

    @property
    def transient(self) -> bool:
        """Worth asking again later: a timeout, a network error, or a status that says "not now"."""
        return self.reason in ("timeout", "network") or self.retry_after is not None or self.status in _RETRYABLE_STATUS


def scrape_bing(category: str, root: Path, count: int, cfg: BingParams, stop: threading.Event | None = None) -> Scraped:
    """Make sure root/<category>/ holds `count` Bing images for the query `category`; return their rows, in order of
    discovery, and the links that could not be saved, with why.

    Files saved by an earlier, interrupted run (see `Journal`) are kept and not fetched again. Raises BingPageError
    when a result page cannot be fetched after `cfg.retries` retries, and Stopped within about WATCH_INTERVAL of `stop`
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


def file_name(url: str, data: bytes | bytearray) -> str:
    """`<first 16 hex of sha1(url)>.<ext>`: ext from the URL when it names an image type, else from the bytes."""
    stem = hashlib.sha1(url.encode()).hexdigest()[:16]
    ext = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lstrip(".").lower()
    return f"{stem}.{ext if ext in URL_EXTENSIONS else _magic_extension(data)}"


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _journaled(journal: Journal) -> list[RawFile]:
    """The journal's rows whose files are present, one per URL (the latest), in first-seen order."""
    return list({row.source_url: row for row in journal.done()}.values())


def _magic_extension(data: bytes | bytearray) -> str:
    return next(ext for magic, ext in _MAGIC_EXTENSIONS if data.startswith(magic))


def _log_progress(category: str, saved: int, count: int) -> None:
    if saved == count or saved % max(1, count // 10) == 0:
        log.info("bing %r: %d/%d images", category, saved, count)


class _Transfer:
    """The fetch of one URL, redirects included: its deadline, and the sockets it opened, which `abandon` shuts."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.abandoned: str | None = None  # "timeout" or "stopped", once abandoned
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.01, self.deadline - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            abandoned = self.abandoned
        if abandoned:
            _shut(sock)

    def abandon(self, why: str) -> None:
        """Shut every socket of the transfer: a read blocked on one returns at once."""
        with self._lock:
            if self.abandoned:
                return
            self.abandoned = why
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def create_connection(self, address: tuple[str, int], timeout: Any = None, source_address: Any = None) -> socket.socket:
        """socket.create_connection within the time left, the socket watched (http.client's _create_connection)."""
        sock = socket.create_connection(address, self.remaining(), source_address)
        self.watch(sock)
        return sock


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, transfer: _Transfer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = transfer.create_connection


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, transfer: _Transfer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._transfer = transfer
        self._create_connection = transfer.create_connection

    def connect(self) -> None:
        """As HTTPSConnection.connect, with the TLS socket watched before its handshake (a slow handshake is cut too)."""
        http.client.HTTPConnection.connect(self)
        host = self._tunnel_host or self.host
        self.sock = self._context.wrap_socket(self.sock, server_hostname=host, do_handshake_on_connect=False)
        self._transfer.watch(self.sock)
        self.sock.do_handshake()


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, transfer: _Transfer) -> None:
        super().__init__()
        self.transfer = transfer

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_WatchedHTTPConnection, transfer=self.transfer), req)


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, transfer: _Transfer, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.transfer = transfer

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(partial(_WatchedHTTPSConnection, transfer=self.transfer), req, context=self._context)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow at most MAX_REDIRECTS redirects, to http(s) URLs only (urllib would also follow them to ftp://)."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not is_http(newurl):
            raise FetchError("redirect_refused", f"HTTP {code} redirect to non-http URL {newurl!r} refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Client:
    """Bing requests for one category: result pages and image downloads, each one a watched transfer.

    Used as a context manager: a watchdog thread abandons the transfers that pass their deadline, and all of them
    once `stop` is set."""

    def __init__(self, category: str, cfg: BingParams, stop: threading.Event) -> None:
        adult = "on" if cfg.adult_filter else "off"
        library = Bing(category, PAGE_SIZE, None, adult, cfg.timeout, cfg.filter, verbose=False)
        self.category = category
        self.cfg = cfg
        self.headers = library.headers
        self.adult = adult
        self.qft = library.get_filter(cfg.filter)
        self.stop = stop
        self._transfers: set[_Transfer] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"bing-watchdog-{category_slug(category)}", daemon=True)
        self._random = random.Random()
        self._tls = ssl.create_default_context()  # once: loading the CA certificates costs more than a download

    def __enter__(self) -> _Client:
        self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._watchdog.join()

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
                page = self.fetch(url).decode("utf-8", errors="replace")
                return [_request_url(html.unescape(link)) for link in _MURL.findall(page)]
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

    def image(self, url: str) -> bytearray:
        """The image at `url`; FetchError says why not."""
        data = self.fetch(url)
        if not _is_valid_image(data):
            raise FetchError("not_an_image", f"not an image (starts with {bytes(data[:16])!r})")
        return data

    def fetch(self, url: str) -> bytearray:
        """The body at `url`: within `timeout` seconds for the whole transfer and `max_bytes` bytes, complete, else
        FetchError; Stopped when the stop request came first."""
        if not is_http(url):
            raise FetchError("not_http", "not an http(s) URL")
        if self.stop.is_set():
            raise Stopped(f"bing {self.category!r}: stopped")
        transfer = _Transfer(self.cfg.timeout)
        with self._lock:
            self._transfers.add(transfer)
        try:
            return self._read(url, transfer)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            if transfer.abandoned:  # whatever the shut socket made the read raise
                raise self._abandoned(transfer) from None
            raise _fetch_error(exc) from None
        finally:
            with self._lock:
                self._transfers.discard(transfer)

    def _read(self, url: str, transfer: _Transfer) -> bytearray:
        opener = urllib.request.build_opener(_HttpOnlyRedirects, _WatchedHTTPHandler(transfer), _WatchedHTTPSHandler(transfer, self._tls))
        request = urllib.request.Request(url, headers=self.headers)
        try:
            response = opener.open(request, timeout=transfer.remaining())
        except urllib.error.HTTPError as exc:
            exc.close()  # the status is all we need: release the connection now
            raise
        with response:
            length = _content_length(response)
            if length is not None and length > self.cfg.max_bytes:
                raise FetchError("too_large", f"Content-Length {length} > source.bing.max_bytes={self.cfg.max_bytes}")
            body = bytearray()
            while chunk := response.read(_CHUNK):
                body += chunk
                if len(body) > self.cfg.max_bytes:
                    raise FetchError("too_large", f"more than source.bing.max_bytes={self.cfg.max_bytes} bytes")
        if transfer.abandoned:  # a shut socket can look like the end of the body
            raise self._abandoned(transfer)
        if length is not None and len(body) < length:
            raise FetchError("short_body", f"body cut short: {len(body)} of {length} bytes")
        return body

    def _abandoned(self, transfer: _Transfer) -> Exception:
        if transfer.abandoned == "stopped":
            return Stopped(f"bing {self.category!r}: stopped")
        return FetchError("timeout", f"transfer took longer than source.bing.timeout={self.cfg.timeout} s")

    def abandon(self) -> None:
        """Abandon every transfer in flight now (the stop request)."""
        with self._lock:
            transfers = list(self._transfers)
        for transfer in transfers:
            transfer.abandon("stopped")

    def _watch(self) -> None:
        while not self._closed.wait(WATCH_INTERVAL):
            if self.stop.is_set():
                self.abandon()
                continue
            now = time.monotonic()
            with self._lock:
                late = [transfer for transfer in self._transfers if now > transfer.deadline]
            for transfer in late:
                transfer.abandon("timeout")


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.strip().isdigit() else None


def _retry_after(headers: Any) -> float | None:
    """Seconds from an HTTP Retry-After header (a number of seconds, or a date), or None."""
    value = (headers.get("Retry-After") or "").strip() if headers is not None else ""
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds()) if when.tzinfo else None


def _fetch_error(exc: BaseException) -> FetchError:
    """The outcome of a failed request: the HTTP status, a timeout, a body cut short, or the network error."""
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        return FetchError("http_status", f"HTTP {exc.code} {exc.reason}", exc.code, _retry_after(exc.headers))
    if isinstance(exc, http.client.IncompleteRead):
        return FetchError("short_body", f"body cut short: {len(exc.partial)} bytes, then the connection closed")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return FetchError("timeout", f"no answer within the time left ({reason or 'timed out'})")
    return FetchError("network", str(reason) or type(reason).__name__)


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
