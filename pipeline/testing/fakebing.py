"""A fake Bing Images server on 127.0.0.1, for tests and benchmarks that must never leave the machine.

It serves `GET /images/async?q=…&first=N&count=M` in Bing's async HTML format, and the images it
links to under `/img/<query>/<index>.<ext>`. `special` turns chosen result indexes into the cases a
scraper must survive (see `Kind`). Every request path is logged, thread-safely, in `requests`.

    with FakeBing(images_per_query=20) as fake:
        scrape_bing("beach", root, 10, BingParams(endpoint=fake.endpoint))
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import random
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from unittest import mock

from PIL import Image

HOST = "127.0.0.1"
LIBRARY_ENDPOINT = "https://www.bing.com/images/async"

Kind = Literal[
    "html", "404", "truncated", "slow", "noext", "ftp", "file", "redirect_ftp",
    "drip_headers", "drip_body", "drip_chunked", "slow_redirects", "huge", "endless", "short",
]
"""What a special result index serves instead of a normal image:

- html: an HTML page served as `.jpg` (not an image)
- 404: Not Found
- truncated: the first half of a JPEG (valid magic bytes, does not decode)
- slow: a normal JPEG, sent after `slow_seconds`
- noext: a PNG at a URL without an extension
- ftp, file: a murl with a non-http scheme (`ftp://127.0.0.1/…`, `file:///etc/passwd`)
- redirect_ftp: an http URL that redirects to `ftp://127.0.0.1/…`

Hostile servers, each of which would hold a download forever without a bound on the whole transfer:

- drip_headers: the status line and headers, one byte every `drip_seconds`, without end
- drip_body: a JPEG's headers at once, then its body one byte every `drip_seconds`
- drip_chunked: a chunked JPEG, in chunks of one byte every `drip_seconds`
- slow_redirects: a chain of redirects, each answered after `drip_seconds` (never reaching an image)
- huge: a JPEG that announces a Content-Length of 2 GiB (and would send it)
- endless: a JPEG without Content-Length whose body never ends
- short: a JPEG whose body stops at half its announced Content-Length
"""

NOT_AN_IMAGE = b"<!DOCTYPE html><html><body><h1>Not an image</h1></body></html>"


@lru_cache(maxsize=4096)
def image_bytes(query: str, index: int, fmt: str = "JPEG") -> bytes:
    """A small noisy image, different for every (query, index)."""
    rng = random.Random(hashlib.sha256(f"{query}/{index}".encode()).digest())
    size = (48, 32)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


class FakeBing:
    """The fake server; start/stop it explicitly or use it as a context manager."""

    def __init__(
        self,
        images_per_query: int = 30,
        special: Mapping[int, Kind] | None = None,
        latency: float = 0.0,
        page_size: int = 35,
        slow_seconds: float = 3.0,
        page_error_from: int | None = None,
        drip_seconds: float = 1.0,
    ) -> None:
        self.images_per_query = images_per_query
        self.special = dict(special or {})
        self.latency = latency
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self.page_error_from = page_error_from  # result pages with first >= this answer 500
        self.drip_seconds = drip_seconds
        self.page_refusals: list[tuple[int, str | None]] = []  # the next result-page requests answer (status, Retry-After)
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeBing:
        self._server = _Server((HOST, 0), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fakebing", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> FakeBing:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeBing is not started"
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/images/async"

    def kind(self, index: int) -> Kind | None:
        return self.special.get(index)

    def image_url(self, query: str, index: int) -> str:
        """The murl listed for result `index` of `query`."""
        name = f"{urllib.parse.quote(query, safe='')}/{index}{self._extension(index)}"
        match self.kind(index):
            case "ftp":
                return f"ftp://{HOST}/img/{name}"
            case "file":
                return "file:///etc/passwd"
        return f"http://{HOST}:{self.port}/img/{name}"

    def body(self, query: str, index: int) -> bytes:
        """The bytes served for result `index` of `query` (with status 200)."""
        match self.kind(index):
            case "html":
                return NOT_AN_IMAGE
            case "truncated":
                full = image_bytes(query, index)
                return full[: len(full) // 2]
        return image_bytes(query, index, "PNG" if self._extension(index) != ".jpg" else "JPEG")

    def page(self, query: str, first: int, count: int) -> str:
        """Result page: Bing's async HTML, empty past the last result."""
        stop = min(self.images_per_query, first + min(count, self.page_size))
        return "\n".join(self._result_html(query, index) for index in range(first, stop))

    def image_requests(self) -> list[str]:
        """Logged requests for images (paths under /img/)."""
        with self._lock:
            return [path for path in self.requests if path.startswith("/img/")]

    def page_requests(self) -> list[dict[str, str]]:
        """Query parameters of each logged result-page request."""
        with self._lock:
            paths = [path for path in self.requests if path.startswith("/images/async")]
        return [dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query, keep_blank_values=True)) for path in paths]

    def _extension(self, index: int) -> str:
        """Normal results alternate JPEG (even index) and PNG (odd); broken ones claim to be JPEGs."""
        match self.kind(index):
            case "noext":
                return ""
            case None | "slow":
                return ".png" if index % 2 else ".jpg"
        return ".jpg"

    def _result_html(self, query: str, index: int) -> str:
        metadata = {
            "purl": f"http://{HOST}:{self.port}/page/{index}",
            "murl": self.image_url(query, index),
            "turl": f"http://{HOST}:{self.port}/th?id={index}",
            "t": f"{query} {index}",
        }
        m = html.escape(json.dumps(metadata, separators=(",", ":")))
        return f'<li><div class="imgpt"><a class="iusc" m="{m}" href="/images/search?q={index}"><img/></a></div></li>'

    def _log(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeBing) -> None:
        super().__init__(address, handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that gave up (timeouts) are expected; stay quiet about them."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        fake = self.server.fake
        fake._log(self.path)
        time.sleep(fake.latency)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/images/async":
            self._page(fake, dict(urllib.parse.parse_qsl(url.query)))
        elif url.path.startswith("/img/"):
            self._image(fake, url.path)
        else:
            self._send(404, b"not found", "text/plain")

    def _page(self, fake: FakeBing, params: dict[str, str]) -> None:
        first, count = int(params.get("first", 0)), int(params.get("count", 35))
        with fake._lock:
            refusal = fake.page_refusals.pop(0) if fake.page_refusals else None
        if refusal is not None:
            status, retry_after = refusal
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fake.page_error_from is not None and first >= fake.page_error_from:
            self._send(500, b"internal error", "text/plain")
            return
        self._send(200, fake.page(params.get("q", ""), first, count).encode(), "text/html; charset=utf-8")

    def _image(self, fake: FakeBing, path: str) -> None:
        _, _, quoted_query, name = path.split("/", 3)
        query, index = urllib.parse.unquote(quoted_query), int(name.split(".")[0])
        match fake.kind(index):
            case "404":
                self._send(404, b"not found", "text/plain")
            case "redirect_ftp":
                self.send_response(302)
                self.send_header("Location", f"ftp://{HOST}{path}")
                self.end_headers()
            case "html":
                self._send(200, fake.body(query, index), "text/html")
            case "drip_headers" | "drip_body" | "drip_chunked" | "slow_redirects" | "huge" | "endless" | "short" as kind:
                self._hostile(fake, kind, path, image_bytes(query, index))
            case kind:
                if kind == "slow":
                    time.sleep(fake.slow_seconds)
                self._send(200, fake.body(query, index), "image/png" if name.endswith(".png") else "image/jpeg")

    def _hostile(self, fake: FakeBing, kind: str, path: str, jpeg: bytes) -> None:
        """Serve `kind` (see `Kind`) until the client gives up, or for at most a minute."""
        drip = fake.drip_seconds
        try:
            if kind == "drip_headers":
                self._drip(b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 100_000, drip)
            elif kind == "slow_redirects":
                time.sleep(drip)
                hop = int(self.path.rsplit("hop=", 1)[1]) + 1 if "hop=" in self.path else 1
                self.send_response(302)
                self.send_header("Location", f"{path}?hop={hop}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "drip_chunked":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for byte in jpeg * 100:
                    self.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n")
                    self.wfile.flush()
                    time.sleep(drip)
            else:
                length = {"huge": 2 * 1024**3, "short": len(jpeg), "drip_body": len(jpeg)}.get(kind)
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                if length is not None:
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if kind == "short":
                    self.wfile.write(jpeg[: len(jpeg) // 2])
                    self.close_connection = True
                elif kind == "drip_body":
                    self._drip(jpeg, drip)
                else:  # huge, endless: a JPEG start, then zeros as fast as the client takes them
                    self.wfile.write(jpeg[:16])
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        self.wfile.write(bytes(1 << 16))
        except OSError:  # the client gave up, as it should
            self.close_connection = True

    def _drip(self, data: bytes, seconds: float) -> None:
        for byte in data[: max(1, int(60 / seconds))]:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(seconds)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the per-request log on stderr (requests are in FakeBing.requests)."""


@contextmanager
def redirect_library(endpoint: str) -> Iterator[list[str]]:
    """Point bing_image_downloader (which hard-codes www.bing.com) at `endpoint`.

    Wraps `urllib.request.urlopen`: result-page URLs are rewritten to `endpoint`, and any URL that is
    not on 127.0.0.1 after that is refused. Yields the list of URLs opened.
    """
    original = urllib.request.urlopen
    opened: list[str] = []

    def urlopen(request: str | urllib.request.Request, *args: Any, **kwargs: Any) -> Any:
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        if url.startswith(LIBRARY_ENDPOINT + "?"):
            url = endpoint + url[len(LIBRARY_ENDPOINT):]
        if urllib.parse.urlsplit(url).hostname != HOST:
            raise RuntimeError(f"refusing to open {url!r}: only {HOST} may be reached")
        opened.append(url)
        headers = dict(request.header_items()) if isinstance(request, urllib.request.Request) else {}
        return original(urllib.request.Request(url, headers=headers), *args, **kwargs)

    with mock.patch("urllib.request.urlopen", urlopen):
        yield opened
