"""A real HTTP/1.1 server on 127.0.0.1 for tests that fetch. Contains no business logic.

Tests talk to a real socket rather than a mocked transport so that timeouts,
redirects, compression and connection handling are exercised the way they are
in production. Usage:

    with serve({"/feed": Reply(body=b"<rss/>", headers={"ETag": '"v1"'})}) as server:
        result = fetch_one(server.url("/feed"))
        assert server.requests[0].headers["user-agent"].startswith("aggregator/")

A route is a `Reply` or a callable that gets the `Request` and returns one
(it runs in the server's thread, so it may sleep to simulate a slow server).
Routes can be added after start through `server.routes`. A `Reply` body may be
an iterable of chunks, sent with chunked encoding and flushed one by one
(useful for dripping servers), and `raw` bytes are written to the socket
verbatim for responses no well-behaved server would send.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = b""
    client_port: int = 0  # equal ports mean a reused connection


@dataclass(frozen=True)
class Reply:
    """What to answer; Content-Length is added for bytes bodies unless given."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str | None = None
    drop: bool = False  # close the connection without answering
    raw: bytes | None = None  # written as is, then the connection is closed


Handler = Callable[[Request], Reply]
Route = Reply | Handler


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status=status, headers={"Location": location})


def delayed(seconds: float, reply: Reply) -> Handler:
    """A handler that answers `reply` after sleeping, for slow or busy servers."""

    def handler(_: Request) -> Reply:
        time.sleep(seconds)
        return reply

    return handler


def drip(chunk: bytes = b"x", interval: float = 0.2) -> Iterator[bytes]:
    """An endless body, one chunk per interval, until the client hangs up."""
    while True:
        time.sleep(interval)
        yield chunk


class Server:
    """A running server: its routing table, a log of requests, peak concurrency."""

    def __init__(self, routes: Mapping[str, Route], tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes)
        self.requests: list[Request] = []
        self.max_active = 0
        self._active = 0
        self._lock = threading.Lock()
        self._httpd = _HTTPServer(("127.0.0.1", 0), _RequestHandler)
        self._httpd.owner = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        host, port = self._httpd.server_address[:2]
        self.base_url = f"{'https' if tls else 'http'}://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _start(self) -> None:
        self._thread.start()

    def _stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _route(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
        route = self.routes.get(request.path) or self.routes.get(request.path.split("?")[0])
        if route is None:
            return Reply(status=404, body=b"no such route")
        return route if isinstance(route, Reply) else route(request)

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1


@contextmanager
def serve(
    routes: Mapping[str, Route] | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[Server]:
    """Run a server for the duration of the block, speaking HTTPS if given a `tls` context."""
    server = Server(routes or {}, tls)
    server._start()
    try:
        yield server
    finally:
        server._stop()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, for "connection refused"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class _HTTPServer(ThreadingHTTPServer):
    # Handlers that sleep or drip must not keep a test waiting at shutdown.
    daemon_threads = True
    block_on_close = False
    owner: Server


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is real
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean

    def _handle(self) -> None:
        owner = self.server.owner
        owner._enter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            port = self.client_address[1]
            reply = owner._route(Request(self.command, self.path, headers, body, port))
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up, as tests intend
        finally:
            owner._leave()

    def _send(self, reply: Reply) -> None:
        if reply.drop or reply.raw is not None:
            if reply.raw is not None:
                self.wfile.write(reply.raw)
                self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(reply.status, reply.reason)
        names = {name.lower() for name in reply.headers}
        for name, value in reply.headers.items():
            self.send_header(name, value)
        no_body = reply.status in (204, 304) or 100 <= reply.status < 200
        if isinstance(reply.body, bytes):
            if "content-length" not in names and not no_body:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if not no_body and self.command != "HEAD":
                self.wfile.write(reply.body)
            return
        chunked = "content-length" not in names
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.close_connection = True  # the given length may be a deliberate lie
        self.end_headers()
        try:
            for chunk in reply.body:
                if not chunk:
                    continue
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
        except ValueError:  # one generator body shared by two requests at once
            self.close_connection = True
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
