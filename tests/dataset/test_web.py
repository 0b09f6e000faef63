"""web.Downloader, the boundary with untrusted servers, on its own: real HTTP servers on 127.0.0.1 (the fake Bing's
image host, with its hostile modes), each transfer bounded in time and size, only complete images kept."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from bing_image_downloader.bing import _is_valid_image

from pipeline.core.errors import Stopped
from pipeline.dataset.web import Downloader, FetchError, file_name, image_extension
from pipeline.testing.fakebing import FakeBing, image_bytes

SPECIAL = {1: "html", 2: "404", 3: "redirect_ftp", 4: "huge", 5: "endless", 6: "short", 7: "drip_body", 8: "drip_headers", 9: "slow_redirects", 10: "noext"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBing]:
    with FakeBing(special=SPECIAL, drip_seconds=0.2) as fake:
        yield fake


def downloader(stop: threading.Event | None = None, timeout: int = 2, max_bytes: int = 1_000_000) -> Downloader:
    return Downloader("test", "source.test", timeout, max_bytes, stop or threading.Event(), {})


def reason(server: FakeBing, index: int, **limits) -> str:
    with downloader(**limits) as web, pytest.raises(FetchError) as failure:
        web.image(server.image_url("sky", index))
    return failure.value.reason


SIGNATURES = {
    "jpg": b"\xff\xd8\xff\xe0", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF89a", "bmp": b"BM", "tiff": b"II*\x00",
    "webp": b"RIFF\x10\x00\x00\x00WEBPVP8 ",
}


@pytest.mark.parametrize("data", [*SIGNATURES.values(), b"GIF87a", b"MM\x00*", b"<html>", b"RIFF\x10\x00\x00\x00WAVEfmt ", b"", b"GIF8"])
def test_an_image_is_what_bing_image_downloader_calls_one(data):
    assert (image_extension(data + bytes(8)) is not None) == _is_valid_image(data + bytes(8))


def test_a_file_is_named_by_its_url_with_the_urls_image_extension_else_the_bytes_own():
    assert file_name("http://a.test/x/photo.JPEG?s=1", SIGNATURES["png"]) == file_name("http://a.test/x/photo.JPEG?s=1", b"")
    assert file_name("http://a.test/x/photo.JPEG?s=1", b"").endswith(".jpeg")
    assert {file_name("http://a.test/p.php", data).rsplit(".", 1)[1] for data in SIGNATURES.values()} == set(SIGNATURES)
    assert file_name("http://a.test/1", b"") != file_name("http://a.test/2", b"") and len(file_name("http://a.test/1", b"BM").split(".")[0]) == 16


def test_a_complete_image_is_returned_byte_for_byte(server):
    with downloader() as web:
        assert web.image(server.image_url("sky", 0)) == image_bytes("sky", 0)
        assert image_extension(web.image(server.image_url("sky", 10))) == "png"  # no extension in its URL


@pytest.mark.parametrize(("index", "expected"), [(1, "not_an_image"), (2, "http_status"), (3, "redirect_refused"), (6, "short_body")])
def test_each_kind_of_bad_answer_is_refused_with_its_reason(server, index, expected):
    assert reason(server, index) == expected


def test_a_url_that_is_not_http_is_never_requested(server):
    before = len(server.requests)
    with downloader() as web:
        for url in ("ftp://127.0.0.1/img/sky/0.jpg", "file:///etc/passwd", "javascript:alert(1)"):
            with pytest.raises(FetchError, match="not an http"):
                web.image(url)
    assert len(server.requests) == before


@pytest.mark.parametrize("index", [4, 5])
def test_a_body_over_max_bytes_is_refused_at_the_header_or_as_soon_as_it_passes(server, index):
    started = time.monotonic()
    assert reason(server, index, max_bytes=100_000) == "too_large"
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("index", [7, 8, 9])
def test_a_server_that_drips_or_redirects_forever_is_cut_at_the_timeout(server, index):
    started = time.monotonic()
    assert reason(server, index, timeout=1) == "timeout"
    assert time.monotonic() - started < 3  # the whole transfer, however many bytes or redirects trickle in


@pytest.fixture
def dripping_tls_server() -> Iterator[str]:
    """A server whose TLS handshake never ends: a record header announcing 16 KiB, then one byte each 0.2 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                threading.Thread(target=drip, args=(connection,), daemon=True).start()

    def drip(connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            connection.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16384 bytes to come
            while not done.wait(0.2):
                connection.sendall(b"\x00")

    threading.Thread(target=serve, daemon=True).start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/sky.jpg"
    done.set()
    listener.close()


def test_a_tls_handshake_that_drips_is_cut_at_the_timeout_or_at_once_by_a_stop_request(dripping_tls_server):
    started = time.monotonic()
    with downloader(timeout=1) as web, pytest.raises(FetchError) as failure:
        web.image(dripping_tls_server)
    assert failure.value.reason == "timeout" and time.monotonic() - started < 3
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with downloader(stop, timeout=30) as web, pytest.raises(Stopped, match="test: stopped"):
        web.image(dripping_tls_server)
    assert time.monotonic() - started < 2


def test_a_stop_request_abandons_a_transfer_in_flight_at_once(server):
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with downloader(stop, timeout=30) as web, pytest.raises(Stopped, match="test: stopped"):
        web.image(server.image_url("sky", 7))
    assert time.monotonic() - started < 2
