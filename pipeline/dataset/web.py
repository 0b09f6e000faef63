"""Downloads from untrusted web servers, for the sources that fetch URLs (`bing`, `urls`).

Every server is untrusted: `timeout` bounds the whole transfer of one URL (connection, headers, redirects and
body: a watchdog shuts the sockets of a transfer that overruns, however slowly the server drips), `max_bytes`
bounds its size, a body cut short is a failure, redirects go to http(s) URLs only, a body is kept only when it
starts as an image does (the signatures bing-image-downloader accepts), and a stop request (Ctrl-C) abandons the
transfers in flight at once.

The transfers are httpx's, through its public hooks only: the `trace` request extension hands over each connection's
socket, and `SSLContext.sslsocket_class` each TLS socket before its handshake, for the watchdog to shut.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import posixpath
import socket
import ssl
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from typing import Any

import httpx

from pipeline.core.errors import Stopped

MAX_REDIRECTS = 5
WATCH_INTERVAL = 0.1  # seconds between the watchdog's checks of deadlines and of the stop request
_CHUNK = 1 << 16
_RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
URL_EXTENSIONS = frozenset({"jpe", "jpeg", "jfif", "exif", "tiff", "gif", "bmp", "png", "webp", "jpg"})

# File extension for each image signature, as bing-image-downloader checks them (a WebP file: RIFF????WEBP).
_MAGIC_EXTENSIONS = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


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


def file_name(url: str, data: bytes | bytearray) -> str:
    """`<first 16 hex of sha1(url)>.<ext>`: ext from the URL when it names an image type, else from the bytes."""
    stem = hashlib.sha1(url.encode()).hexdigest()[:16]
    ext = posixpath.splitext(urllib.parse.urlsplit(url).path)[1].lstrip(".").lower()
    return f"{stem}.{ext if ext in URL_EXTENSIONS else image_extension(data)}"


def is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def image_extension(data: bytes | bytearray) -> str | None:
    """The extension of the image type `data` starts as, or None when it starts as no image."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _MAGIC_EXTENSIONS if data.startswith(magic)), None)


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

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's `trace` request extension: each new connection's socket watched as soon as it is connected."""
        if event == "connection.connect_tcp.complete":
            self.watch(info["return_value"].get_extra_info("socket"))


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


_handshaking = threading.local()  # .transfer: the transfer whose TLS handshake this thread is about to make


class _WatchedSSLSocket(ssl.SSLSocket):
    """A TLS socket watched by its transfer before its handshake, so that a slow handshake is cut too (the socket it
    wraps is detached by then): `SSLContext.sslsocket_class`."""

    def do_handshake(self, block: bool = False) -> None:
        transfer = getattr(_handshaking, "transfer", None)
        if transfer is not None:
            transfer.watch(self)
        super().do_handshake(block)


class Downloader:
    """Watched transfers of untrusted URLs for one piece of work (a category, a batch of URLs): each bounded by
    `timeout` seconds for the whole transfer and `max_bytes` bytes, complete, redirected to http(s) only.

    Used as a context manager: a watchdog thread abandons the transfers that pass their deadline, and all of them
    once `stop` is set. `name` prefixes Stopped messages ("bing 'beach'"); `key` names the params in messages
    ("source.bing").
    """

    def __init__(self, name: str, key: str, timeout: int, max_bytes: int, stop: threading.Event, headers: dict[str, str]) -> None:
        self.name = name
        self.key = key
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.stop = stop
        self._transfers: set[_Transfer] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{name}", daemon=True)
        tls = ssl.create_default_context()  # once: loading the CA certificates costs more than a download
        tls.sslsocket_class = _WatchedSSLSocket
        # A connection per transfer (none kept alive: each one's sockets are its own to shut); the body as sent, never
        # decompressed (a small compressed body can inflate past any bound).
        self._client = httpx.Client(verify=tls, limits=httpx.Limits(max_keepalive_connections=0),
                                    headers={"Accept-Encoding": "identity", **headers})

    def __enter__(self) -> Downloader:
        self._watchdog.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._watchdog.join()
        self._client.close()

    def image(self, url: str) -> bytearray:
        """The image at `url`; FetchError says why not."""
        data = self.fetch(url)
        if image_extension(data) is None:
            raise FetchError("not_an_image", f"not an image (starts with {bytes(data[:16])!r})")
        return data

    def fetch(self, url: str) -> bytearray:
        """The body at `url`: within `timeout` seconds for the whole transfer and `max_bytes` bytes, complete, else
        FetchError; Stopped when the stop request came first."""
        if not is_http(url):
            raise FetchError("not_http", "not an http(s) URL")
        if self.stop.is_set():
            raise Stopped(f"{self.name}: stopped")
        transfer = _Transfer(self.timeout)
        with self._lock:
            self._transfers.add(transfer)
        _handshaking.transfer = transfer
        try:
            return self._follow(url, transfer)
        except (OSError, ValueError, httpx.HTTPError, httpx.InvalidURL) as exc:
            if transfer.abandoned:  # whatever the shut socket made the read raise
                raise self._abandoned(transfer) from None
            raise _fetch_error(exc) from None
        finally:
            _handshaking.transfer = None
            with self._lock:
                self._transfers.discard(transfer)

    def _follow(self, url: str, transfer: _Transfer) -> bytearray:
        """The body at `url`, through at most MAX_REDIRECTS redirects, to http(s) URLs only."""
        for _ in range(MAX_REDIRECTS + 1):
            request = self._client.build_request("GET", url, timeout=transfer.remaining(), extensions={"trace": transfer.trace})
            with contextlib.closing(self._client.send(request, stream=True)) as response:
                if not response.is_redirect:
                    return self._body(response, transfer)
                status = response.status_code
                url = urllib.parse.urljoin(url, response.headers["Location"])
                if not is_http(url):
                    raise FetchError("redirect_refused", f"HTTP {status} redirect to non-http URL {url!r} refused")
        raise FetchError("http_status", f"HTTP {status}: more than {MAX_REDIRECTS} redirects", status)

    def _body(self, response: httpx.Response, transfer: _Transfer) -> bytearray:
        if response.status_code >= 400:
            raise FetchError("http_status", f"HTTP {response.status_code} {response.reason_phrase}", response.status_code,
                             _retry_after(response.headers))
        length = _content_length(response)
        if length is not None and length > self.max_bytes:
            raise FetchError("too_large", f"Content-Length {length} > {self.key}.max_bytes={self.max_bytes}")
        body = bytearray()
        try:
            for chunk in response.iter_raw(_CHUNK):
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchError("too_large", f"more than {self.key}.max_bytes={self.max_bytes} bytes")
        except httpx.RemoteProtocolError:
            if transfer.abandoned or length is None:
                raise
        if transfer.abandoned:  # a shut socket can look like the end of the body
            raise self._abandoned(transfer)
        if length is not None and len(body) < length:
            raise FetchError("short_body", f"body cut short: {len(body)} of {length} bytes")
        return body

    def _abandoned(self, transfer: _Transfer) -> Exception:
        if transfer.abandoned == "stopped":
            return Stopped(f"{self.name}: stopped")
        return FetchError("timeout", f"transfer took longer than {self.key}.timeout={self.timeout} s")

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


def _content_length(response: httpx.Response) -> int | None:
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
    """The outcome of a failed request: a timeout, or the network error."""
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return FetchError("timeout", f"no answer within the time left ({exc or 'timed out'})")
    return FetchError("network", str(exc) or type(exc).__name__)


def request_url(link: str) -> str:
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
