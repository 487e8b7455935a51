"""aggregator.fetch against real servers on 127.0.0.1 (see httpserver.py)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import aiohttp
import aiohttp.abc
import brotli
import pytest
from aiohttp.client_reqrep import ConnectionKey

from aggregator import PROJECT_URL
from aggregator.fetch import _describe, _Progress, fetch_iter, fetch_one
from aggregator.models import CacheValidators, FetchLimits, FetchResult
from tests.httpserver import (
    Reply,
    Request,
    Server,
    closed_port_url,
    delayed,
    drip,
    redirect,
    serve,
)

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
NONE = CacheValidators()
LIMITS = FetchLimits()
MB = 1 << 20


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as running:
        yield running


def fetch(
    url: str, limits: FetchLimits = LIMITS, validators: CacheValidators = NONE
) -> FetchResult:
    return fetch_one(url, validators, limits)


def fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aggregator-fetch"]


def compressed_zeros(encoding: str, megabytes: int) -> bytes:
    """A bomb built in slices so the test itself never holds the inflated body."""
    zeros = bytes(MB)
    if encoding == "br":
        packer = brotli.Compressor(quality=1)
        pieces = [packer.process(zeros) for _ in range(megabytes)]
        return b"".join(pieces) + bytes(packer.finish())
    gzipper = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    pieces = [gzipper.compress(zeros) for _ in range(megabytes)]
    return b"".join(pieces) + gzipper.flush()


# --------------------------------------------------------------------------- success


def test_ok_response_carries_body_headers_and_timing(server: Server) -> None:
    server.routes["/feed"] = Reply(
        body=FEED,
        headers={
            "Content-Type": "application/rss+xml",
            "ETag": '"v1"',
            "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT",
            "Cache-Control": "max-age=300",
        },
    )
    result = fetch(server.url("/feed"))
    assert result.ok and result.error is None
    assert result.status == 200
    assert result.body == FEED
    assert result.wire_bytes == len(FEED)
    assert result.url == result.final_url == server.url("/feed")
    assert result.headers["content-type"] == "application/rss+xml"
    assert result.headers["cache-control"] == "max-age=300"
    assert result.validators == CacheValidators('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    assert result.fetched_at.tzinfo is UTC
    assert 0 < result.duration < 5


def test_request_headers_name_the_project_and_accept_feeds(server: Server) -> None:
    server.routes["/feed"] = Reply(body=FEED)
    fetch(server.url("/feed"))
    (request,) = server.requests
    assert request.headers["user-agent"].startswith("aggregator/")
    assert PROJECT_URL in request.headers["user-agent"]
    assert request.headers["accept"].startswith("application/atom+xml, application/rss+xml")
    assert request.headers["accept-encoding"] == "gzip, deflate, br"
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers


def test_custom_user_agent(server: Server) -> None:
    server.routes["/feed"] = Reply(body=FEED)
    fetch_one(server.url("/feed"), NONE, LIMITS, "tester/1.0")
    assert server.requests[0].headers["user-agent"] == "tester/1.0"


def test_conditional_get_gets_not_modified(server: Server) -> None:
    def conditional(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(status=304, headers={"ETag": '"v1"'})
        return Reply(body=FEED, headers={"ETag": '"v1"'})

    server.routes["/feed"] = conditional
    validators = CacheValidators('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")
    result = fetch(server.url("/feed"), validators=validators)
    assert server.requests[0].headers["if-none-match"] == '"v1"'
    assert server.requests[0].headers["if-modified-since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert result.not_modified
    assert result.status == 304 and result.body is None and result.error is None
    assert result.headers["etag"] == '"v1"'

    changed = fetch(server.url("/feed"), validators=CacheValidators('"v0"'))
    assert changed.status == 200 and changed.body == FEED and not changed.not_modified


def test_empty_request_list_yields_nothing() -> None:
    assert list(fetch_iter([], LIMITS)) == []
    assert fetch_threads() == []


# --------------------------------------------------------------------------- content encoding


def _deflate_raw(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", _deflate_raw),
        ("br", brotli.compress),
        ("identity", lambda data: data),
        ("deflate, gzip", lambda data: gzip.compress(zlib.compress(data))),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "br", "identity", "chained"],
)
def test_compressed_bodies_are_decoded(
    server: Server, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = FEED * 50
    wire = encode(body)
    server.routes["/feed"] = Reply(body=wire, headers={"Content-Encoding": encoding})
    result = fetch(server.url("/feed"))
    assert result.error is None
    assert result.body == body
    assert result.wire_bytes == len(wire)


def test_compressed_body_arriving_byte_by_byte(server: Server) -> None:
    wire = zlib.compress(FEED)
    chunks = [wire[i : i + 1] for i in range(len(wire))]
    server.routes["/feed"] = Reply(body=chunks, headers={"Content-Encoding": "deflate"})
    assert fetch(server.url("/feed")).body == FEED


def test_unknown_or_corrupt_encoding_is_an_error(server: Server) -> None:
    server.routes["/lzw"] = Reply(body=b"xx", headers={"Content-Encoding": "compress"})
    server.routes["/bad"] = Reply(body=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    unknown = fetch(server.url("/lzw"))
    assert unknown.error == "unsupported Content-Encoding 'compress'"
    assert unknown.status == 200 and unknown.body is None
    corrupt = fetch(server.url("/bad"))
    assert corrupt.error is not None and corrupt.error.startswith("could not decode gzip body")
    assert corrupt.body is None


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_decompression_bomb_stops_at_the_decoded_cap(server: Server, encoding: str) -> None:
    wire = compressed_zeros(encoding, 100)
    assert len(wire) < 200_000
    server.routes["/bomb"] = Reply(body=wire, headers={"Content-Encoding": encoding})
    limits = FetchLimits(max_decoded_bytes=MB)
    tracemalloc.start()
    try:
        started = time.monotonic()
        result = fetch(server.url("/bomb"), limits)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.error == "decompressed body exceeds 1 MB limit"
    assert result.body is None and result.status == 200
    assert elapsed < 3
    assert peak < 8 * MB


def test_body_over_the_wire_cap_is_refused(server: Server) -> None:
    server.routes["/big"] = Reply(body=(bytes(1000) for _ in range(100)))
    result = fetch(server.url("/big"), FetchLimits(max_body_bytes=64 * 1024))
    assert result.error == "response body exceeds 64 KB limit"
    assert result.body is None and result.status == 200
    assert 64 * 1024 < result.wire_bytes <= 64 * 1024 + 2000


def test_announced_length_over_the_cap_is_refused_before_reading(server: Server) -> None:
    server.routes["/big"] = Reply(body=[b"x"], headers={"Content-Length": str(20 * MB)})
    result = fetch(server.url("/big"))
    assert result.error == "response body exceeds 16 MB limit"
    assert result.wire_bytes == 0


# --------------------------------------------------------------------------- response headers


def test_response_headers_are_bounded(server: Server) -> None:
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(200))
    server.routes["/csp"] = Reply(body=FEED, headers={"Content-Security-Policy": "x" * 12_000})
    server.routes["/long"] = Reply(body=FEED, headers={"X-Long": "x" * 20_000})
    server.routes["/many"] = Reply(raw=b"HTTP/1.1 200 OK\r\n" + many + b"Content-Length: 0\r\n\r\n")
    assert fetch(server.url("/csp")).body == FEED
    long = fetch(server.url("/long"))
    assert long.error == "response header line exceeds 16 KB limit" and long.status is None
    assert fetch(server.url("/many")).error == "more than 128 response headers"


def test_malformed_response_is_a_protocol_error(server: Server) -> None:
    server.routes["/feed"] = Reply(raw=b"HTTP/1.1 abc\r\n\r\n")
    error = fetch(server.url("/feed")).error
    assert error is not None and error.startswith("HTTP protocol error: Bad status line")
    assert "HTTP/1.1 abc" in error  # what the server sent, on one line


def test_repeated_and_non_utf8_headers_become_plain_text(server: Server) -> None:
    head = b'HTTP/1.1 200 OK\r\nX-A: a\r\nX-A: b\r\nETag: "\xe9t\xe9"\r\nContent-Length: 3\r\n'
    server.routes["/feed"] = Reply(raw=head + b"\r\nabc")
    result = fetch(server.url("/feed"))
    assert result.body == b"abc"
    assert result.headers["x-a"] == "a, b"
    assert result.headers["etag"] == '"été"'  # Latin-1, as no UTF-8 reading fits


# --------------------------------------------------------------------------- redirects


def _chain(server: Server, length: int, last: str = "/feed") -> str:
    for hop in range(length):
        nxt = f"/hop{hop + 1}" if hop + 1 < length else last
        server.routes[f"/hop{hop}"] = redirect(
            server.url(nxt), status=(301, 302, 307, 308)[hop % 4]
        )
    server.routes["/feed"] = Reply(body=FEED)
    return server.url("/hop0")


@pytest.mark.parametrize("hops", [1, 3, 5])
def test_redirect_chain_is_followed(server: Server, hops: int) -> None:
    start = _chain(server, hops)
    result = fetch(start)
    assert result.error is None and result.body == FEED
    assert result.url == start
    assert result.final_url == server.url("/feed")
    assert len(server.requests) == hops + 1


@pytest.mark.parametrize("hops", [6, 7])
def test_too_many_redirects(server: Server, hops: int) -> None:
    result = fetch(_chain(server, hops))
    assert result.error == "too many redirects (more than 5)"
    assert result.body is None and result.status in (301, 302, 307, 308)
    assert len(server.requests) == 6


def test_redirect_loop_fails(server: Server) -> None:
    server.routes["/a"] = redirect("/b")
    server.routes["/b"] = redirect("/a")
    result = fetch(server.url("/a"))
    assert result.error == "too many redirects (more than 5)"


@pytest.mark.parametrize(
    ("location", "scheme"),
    [
        ("ftp://example.com/feed", "ftp"),
        ("file:///etc/passwd", "file"),
        ("javascript:alert(1)", "javascript"),
    ],
)
def test_redirect_to_other_scheme_fails(server: Server, location: str, scheme: str) -> None:
    server.routes["/feed"] = redirect(location)
    result = fetch(server.url("/feed"))
    assert result.error == f"redirect to unsupported URL scheme '{scheme}'"
    assert result.status == 302 and result.body is None


def test_relative_locations(server: Server) -> None:
    server.routes["/a/start"] = redirect("next")
    server.routes["/a/next"] = redirect("../b/feed?x=1", status=301)
    server.routes["/b/feed"] = Reply(body=FEED)
    result = fetch(server.url("/a/start"))
    assert result.body == FEED
    assert result.final_url == server.url("/b/feed?x=1")


def test_redirect_without_location_is_an_error(server: Server) -> None:
    server.routes["/feed"] = Reply(status=302)
    assert fetch(server.url("/feed")).error == "HTTP 302 Found without a Location header"


# --------------------------------------------------------------------------- time limits


def test_dripping_server_is_cut_at_the_deadline(server: Server) -> None:
    server.routes["/drip"] = lambda _: Reply(body=drip(b"x", 0.2))
    limits = FetchLimits(deadline=1.5, read_timeout=10)
    started = time.monotonic()
    result = fetch(server.url("/drip"), limits)
    elapsed = time.monotonic() - started
    assert result.error == "total deadline of 1.5 s exceeded"
    assert result.status == 200 and result.body is None
    assert 1.4 < elapsed < 3
    assert result.wire_bytes > 0


def test_silent_server_hits_the_read_timeout(server: Server) -> None:
    server.routes["/slow"] = delayed(2, Reply(body=FEED))
    result = fetch(server.url("/slow"), FetchLimits(read_timeout=0.3))
    assert result.error == "read timeout after 0.3 s"
    assert result.status is None


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "error"), [(404, "HTTP 404 Not Found"), (500, "HTTP 500 Internal Server Error")]
)
def test_error_statuses(server: Server, status: int, error: str) -> None:
    server.routes["/feed"] = Reply(status=status, body=b"oops", headers={"Retry-After": "120"})
    result = fetch(server.url("/feed"))
    assert result.error == error
    assert result.status == status and result.body is None
    assert result.headers["retry-after"] == "120"
    assert not result.ok


def test_slow_error_body_does_not_change_the_outcome(server: Server) -> None:
    server.routes["/feed"] = Reply(status=404, body=drip(b"x", 0.1))
    started = time.monotonic()
    result = fetch(server.url("/feed"))
    assert result.error == "HTTP 404 Not Found"
    assert time.monotonic() - started < 2.5


def test_missing_reason_phrase_comes_from_the_status_code(server: Server) -> None:
    server.routes["/feed"] = Reply(raw=b"HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n")
    result = fetch(server.url("/feed"))
    assert result.error == "HTTP 503 Service Unavailable" and result.status == 503


def test_tls_failure_is_named(server: Server) -> None:
    server.routes["/feed"] = Reply(body=FEED)
    result = fetch(server.url("/feed").replace("http://", "https://"))
    assert result.error is not None and result.error.startswith("TLS error: ")
    assert result.status is None


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that no authority signed."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_certificates_are_verified(tmp_path: Path) -> None:
    with serve({"/feed": Reply(body=FEED)}, tls=_self_signed(tmp_path)) as server:
        result = fetch(server.url("/feed"))
    assert result.error is not None
    assert (
        result.error.replace("self signed", "self-signed") == "TLS error: self-signed certificate"
    )
    assert result.status is None and server.requests == []


def test_connection_refused() -> None:
    result = fetch(closed_port_url())
    assert result.error == "connection refused"
    assert result.status is None and result.body is None and result.headers == {}


def test_server_hanging_up_without_a_response(server: Server) -> None:
    server.routes["/feed"] = Reply(drop=True)
    result = fetch(server.url("/feed"))
    assert result.error == "server closed the connection without a response"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://example.com/feed.xml", "unsupported URL scheme 'ftp'"),
        ("example.com/feed.xml", "invalid URL: 'example.com/feed.xml' does not start with"),
        ("http:///feed.xml", "invalid URL: 'http:///feed.xml' has no host"),
        ("http://exa mple.com/", "invalid URL: 'http://exa mple.com/' has an invalid host"),
        ("http://[::1/", "invalid URL: Invalid IPv6 URL"),
        ("http://ex\x00ample.com/", "invalid URL: Invalid non-printable ASCII character"),
    ],
)
def test_bad_urls_fail_without_a_request(url: str, error: str) -> None:
    result = fetch(url)
    assert result.error is not None and result.error.startswith(error)
    assert result.status is None and result.final_url == url


KEY = ConnectionKey("example.invalid", 80, False, True, None, None, None)


def _connector_error(
    os_error: OSError, kind: type[aiohttp.ClientConnectorError] = aiohttp.ClientConnectorError
) -> aiohttp.ClientConnectorError:
    """Raised as aiohttp's connector does: its own OSError around the real one, from it."""
    try:
        raise kind(KEY, os_error) from os_error
    except aiohttp.ClientConnectorError as exc:
        return exc


def _unverified(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    error.verify_message = message
    return error


def _attempts(*errors: OSError) -> OSError:
    """What aiohappyeyeballs raises when a host's addresses failed in different ways."""
    return OSError("Multiple exceptions: " + ", ".join(str(e) for e in errors))


REFUSED = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 80)")
UNREACHABLE = OSError(101, "Network is unreachable")
NO_ROUTE = OSError(113, "Connect call failed ('::1', 80)")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (
            _connector_error(
                socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
                aiohttp.ClientConnectorDNSError,
            ),
            "could not resolve host example.invalid",
        ),
        (
            _connector_error(
                socket.gaierror(socket.EAI_AGAIN, "Temporary failure"),
                aiohttp.ClientConnectorDNSError,
            ),
            "could not resolve host example.invalid (temporary DNS failure)",
        ),
        (_connector_error(REFUSED), "connection refused"),
        (_connector_error(UNREACHABLE), "network is unreachable"),
        (_connector_error(NO_ROUTE), "no route to host"),
        (_connector_error(_attempts(UNREACHABLE, REFUSED)), "connection refused"),
        (_connector_error(_attempts(UNREACHABLE, NO_ROUTE)), "network is unreachable"),
        (_connector_error(OSError(111, _attempts(REFUSED, REFUSED).args[0])), "connection refused"),
        (_connector_error(OSError("Multiple exceptions: boom, bang")), "could not connect"),
        (
            _connector_error(
                _unverified("self-signed certificate"), aiohttp.ClientConnectorCertificateError
            ),
            "TLS error: self-signed certificate",
        ),
    ],
)
def test_connect_errors_name_their_os_cause(exc: aiohttp.ClientConnectorError, error: str) -> None:
    # DNS and routing failures cannot be staged on 127.0.0.1.
    progress = _Progress(final_url="http://example.invalid/feed")
    assert _describe(exc, LIMITS, progress) == error


class _FailingResolver(aiohttp.abc.AbstractResolver):
    def __init__(self, error: OSError) -> None:
        self._error = error

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        raise self._error

    async def close(self) -> None:
        pass


def test_a_real_dns_failure_chain_is_read() -> None:
    """The hand-made chains above match what aiohttp really raises."""

    async def failure() -> BaseException:
        resolver = _FailingResolver(socket.gaierror(socket.EAI_NONAME, "Name not known"))
        connector = aiohttp.TCPConnector(resolver=resolver)
        async with aiohttp.ClientSession(connector=connector) as session:
            with pytest.raises(aiohttp.ClientError) as caught:
                await session.get("http://example.invalid/feed")
            return caught.value

    exc = asyncio.run(failure())
    assert isinstance(exc, Exception)
    progress = _Progress(final_url="http://example.invalid/feed")
    assert _describe(exc, LIMITS, progress) == "could not resolve host example.invalid"


def test_proxy_from_the_environment(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base_url.removeprefix("http://"))
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    server.routes["http://feeds.example/feed"] = Reply(body=FEED)  # the proxy sees the full URL
    server.routes["/direct"] = Reply(body=FEED)
    proxied = fetch("http://feeds.example/feed")
    assert proxied.error is None and proxied.body == FEED
    assert proxied.final_url == "http://feeds.example/feed"
    assert fetch(server.url("/direct")).body == FEED
    assert [r.path for r in server.requests] == ["http://feeds.example/feed", "/direct"]
    assert server.requests[0].headers["host"] == "feeds.example"


# --------------------------------------------------------------------------- concurrency


def test_concurrency_is_bounded_and_every_url_is_reported(server: Server) -> None:
    server.routes["/slow"] = delayed(0.5, Reply(body=FEED))
    urls = [server.url(f"/slow?n={n}") for n in range(20)]
    started = time.monotonic()
    results = list(fetch_iter([(u, NONE) for u in urls], FetchLimits(concurrency=4)))
    elapsed = time.monotonic() - started
    assert sorted(r.url for r in results) == sorted(urls)
    assert all(r.body == FEED for r in results)
    assert server.max_active == 4
    assert 2.4 < elapsed < 5
    assert fetch_threads() == []


def test_connections_are_reused(server: Server) -> None:
    server.routes["/feed"] = Reply(body=FEED)
    server.routes["/moved"] = redirect("/feed")
    urls = [server.url("/moved")] + [server.url(f"/feed?{n}") for n in range(4)]
    results = list(fetch_iter([(u, NONE) for u in urls], FetchLimits(concurrency=1)))
    assert [r.body for r in results] == [FEED] * 5
    assert len({r.client_port for r in server.requests}) == 1


def test_results_arrive_in_completion_order(server: Server) -> None:
    server.routes["/slow"] = delayed(0.8, Reply(body=FEED))
    server.routes["/fast"] = Reply(body=FEED)
    requests = [(server.url("/slow"), NONE), (server.url("/fast"), NONE)]
    results = fetch_iter(requests, LIMITS)
    started = time.monotonic()
    first = next(results)
    assert first.url == server.url("/fast")
    assert time.monotonic() - started < 0.6
    assert next(results).url == server.url("/slow")
    assert list(results) == []


def test_a_slow_consumer_holds_downloads_back(server: Server) -> None:
    server.routes["/feed"] = Reply(body=FEED)
    urls = [server.url(f"/feed?{n}") for n in range(40)]
    results = fetch_iter([(u, NONE) for u in urls], FetchLimits(concurrency=2))
    next(results)
    time.sleep(0.5)
    # One taken, two queued, and each worker holding one it cannot queue yet.
    assert len(server.requests) <= 5
    assert len(list(results)) == 39


def test_results_without_a_body_wait_without_holding_downloads_back(server: Server) -> None:
    """Only bodies are bounded: a slow consumer of 304s lets every request go out."""
    server.routes["/same"] = Reply(status=304, headers={"ETag": '"v1"'})
    urls = [server.url(f"/same?{n}") for n in range(40)]
    results = fetch_iter([(u, NONE) for u in urls], FetchLimits(concurrency=2))
    assert next(results).status == 304
    deadline = time.monotonic() + 5
    while len(server.requests) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.requests) == 40
    assert [r.status for r in results] == [304] * 39


def test_closing_early_cancels_the_rest(server: Server) -> None:
    server.routes["/fast"] = Reply(body=FEED)
    server.routes["/stuck"] = lambda _: Reply(body=drip(b"x", 0.2))  # one body each
    requests = [(server.url("/fast"), NONE)] + [(server.url(f"/stuck?{n}"), NONE) for n in range(5)]
    results = fetch_iter(requests, FetchLimits(concurrency=6))
    assert next(results).url == server.url("/fast")
    started = time.monotonic()
    results.close()
    assert time.monotonic() - started < 1
    assert fetch_threads() == []


def test_stop_set_from_another_thread_ends_the_wait_for_a_download(server: Server) -> None:
    """`run` stopping sets it while its poll waits for a body that would take the
    whole deadline; the iteration ends at once, the downloads cancelled."""
    server.routes["/fast"] = Reply(body=FEED)
    server.routes["/stuck"] = lambda _: Reply(body=drip(b"x", 0.2))
    requests = [(server.url("/fast"), NONE), (server.url("/stuck"), NONE)]
    stop = threading.Event()
    results = fetch_iter(requests, FetchLimits(concurrency=2, deadline=60.0), stop=stop)
    assert next(results).url == server.url("/fast")
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert list(results) == []
    assert time.monotonic() - started < 2
    assert fetch_threads() == []


def test_stop_already_set_fetches_nothing(server: Server) -> None:
    server.routes["/fast"] = Reply(body=FEED)
    stop = threading.Event()
    stop.set()
    assert list(fetch_iter([(server.url("/fast"), NONE)], FetchLimits(), stop=stop)) == []
    assert server.requests == []
