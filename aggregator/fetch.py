"""HTTP polling of feeds: conditional GET within hard limits, one result per URL.

The only module that imports an HTTP client; it knows nothing of storage or
parsing. Callers hand over (URL, validators) pairs and get `FetchResult`s back
in completion order, so a poll can parse and store one feed while others are
still downloading. Downloads run on one asyncio loop in a background thread
(one connection pool, bounded concurrency) and reach the caller's thread
through a bounded queue, which is what keeps memory flat: a slow consumer
stalls the downloads instead of piling up bodies.

Nothing here raises for a problem with one feed: every failure becomes a
result whose `error` is short text meant for a human reading `status` output.
Redirects and Content-Encoding are handled here rather than by httpx, so that
redirect targets can be vetted and a decompression bomb is stopped at the cap
instead of being inflated first and measured afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import brotli
import httpx

from aggregator import USER_AGENT
from aggregator.models import CacheValidators, FetchLimits, FetchResult

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate, br"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0
_NO_VALIDATORS = CacheValidators()
_DEFAULT_LIMITS = FetchLimits()


def fetch_iter(
    requests: Iterable[tuple[str, CacheValidators]],
    limits: FetchLimits,
    user_agent: str = USER_AGENT,
) -> Generator[FetchResult, None, None]:
    """Fetch every URL, yielding each result as soon as its download finishes.

    `requests` is read up front in the caller's thread, so it may come from
    thread-bound resources such as a database cursor. Closing the generator
    early cancels the downloads still running and waits for the thread to end.
    """
    items = list(requests)
    if not items:
        return
    run = _Background(items, limits, user_agent)
    run.start()
    try:
        while (result := run.next()) is not None:
            yield result
    finally:
        run.stop()


def fetch_one(
    url: str,
    validators: CacheValidators = _NO_VALIDATORS,
    limits: FetchLimits = _DEFAULT_LIMITS,
    user_agent: str = USER_AGENT,
) -> FetchResult:
    """Fetch a single URL, for commands that poll one feed on demand."""
    with contextlib.closing(fetch_iter([(url, validators)], limits, user_agent)) as results:
        return next(results)


# --------------------------------------------------------------------------- background loop

_Item = FetchResult | BaseException | None  # None marks the end, an exception a bug


class _Background:
    """An event loop in a thread that feeds results to the caller through a queue.

    The loop stays up until the consumer calls `stop`, even after the last
    download, so the consumer can always reach the queue through it.
    """

    def __init__(self, items: list[tuple[str, CacheValidators]], limits: FetchLimits, ua: str):
        self._items = items
        self._limits = limits
        self._ua = ua
        self._loop = asyncio.new_event_loop()
        # Holding at most `concurrency` finished bodies (plus as many in
        # flight) is what bounds memory when the consumer is slower.
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max(1, limits.concurrency))
        self._stopping = asyncio.Event()
        self._waiting: concurrent.futures.Future[_Item] | None = None
        self._thread = threading.Thread(target=self._run, name="aggregator-fetch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def next(self) -> FetchResult | None:
        """The next finished result, or None once every URL has been reported."""
        self._waiting = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
        item = self._waiting.result()
        self._waiting = None
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            # Closing without shutdown_default_executor: a DNS lookup stuck in
            # the executor must not hold up a caller that has stopped listening.
            loop.close()

    async def _main(self) -> None:
        producer = asyncio.create_task(self._produce())
        await self._stopping.wait()
        producer.cancel()
        rest = asyncio.all_tasks() - {asyncio.current_task()}
        for task in rest:
            task.cancel()
        await asyncio.gather(producer, *rest, return_exceptions=True)

    async def _produce(self) -> None:
        try:
            async with _client(self._limits, self._ua) as client:
                todo = iter(self._items)
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(max(1, self._limits.concurrency), len(self._items))):
                        group.create_task(self._worker(client, todo))
        except Exception as exc:  # a bug, not a feed problem: let the caller see it
            await self._queue.put(exc)
        else:
            await self._queue.put(None)

    async def _worker(
        self, client: httpx.AsyncClient, todo: Iterator[tuple[str, CacheValidators]]
    ) -> None:
        for url, validators in todo:
            result = await _fetch(client, url, validators, self._limits)
            await self._queue.put(result)


def _client(limits: FetchLimits, user_agent: str) -> httpx.AsyncClient:
    pool = max(1, limits.concurrency)
    return httpx.AsyncClient(
        headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        # The total deadline is enforced around each exchange; waiting for a
        # pooled connection cannot happen since workers never outnumber it.
        timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout, pool=None),
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
        follow_redirects=False,
        http2=False,
        event_hooks={"response": [_hide_location]},
    )


_LOCATION = "aggregator.location"


async def _hide_location(response: httpx.Response) -> None:
    """Move Location out of httpx's sight; `_exchange` reads it back.

    httpx parses Location even with follow_redirects=False and fails on
    targets it cannot represent ("javascript:…"), before we could name the
    problem. Redirects are vetted and followed by `_exchange` instead.
    """
    if "location" in response.headers:
        response.extensions[_LOCATION] = response.headers["location"]
        del response.headers["location"]


# --------------------------------------------------------------------------- one exchange


class _Failure(Exception):
    """A per-feed problem whose message is already the text a user should see."""


@dataclass
class _Progress:
    """What is known so far about one exchange, kept when it fails halfway."""

    final_url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    wire_bytes: int = 0
    moved_to: str | None = None  # the end of an unbroken chain of 301/308 from the start


async def _fetch(
    client: httpx.AsyncClient, url: str, validators: CacheValidators, limits: FetchLimits
) -> FetchResult:
    fetched_at = datetime.now(UTC)
    started = time.monotonic()
    progress = _Progress(final_url=url)
    body: bytes | None = None
    error: str | None = None
    deadline = asyncio.timeout(limits.deadline)
    try:
        async with deadline:
            body = await _exchange(client, url, validators, limits, progress)
    except Exception as exc:
        if deadline.expired():
            error = f"total deadline of {_seconds(limits.deadline)} exceeded"
        else:
            error = _describe(exc, limits, progress)
        body = None
    return FetchResult(
        url=url,
        final_url=progress.final_url,
        fetched_at=fetched_at,
        duration=time.monotonic() - started,
        status=progress.status,
        headers=progress.headers,
        body=body,
        wire_bytes=progress.wire_bytes,
        error=error,
        moved_to=progress.moved_to,
    )


async def _exchange(
    client: httpx.AsyncClient,
    url: str,
    validators: CacheValidators,
    limits: FetchLimits,
    progress: _Progress,
) -> bytes | None:
    """GET `url`, following redirects by hand; None means 304 Not Modified."""
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    target = _checked_url(url, redirected=False)
    permanent = True
    for _ in range(limits.max_redirects + 1):
        progress.final_url = str(target)
        async with client.stream("GET", target, headers=headers) as response:
            status = response.status_code
            progress.status = status
            progress.headers = {key.lower(): value for key, value in response.headers.items()}
            location = response.extensions.get(_LOCATION)
            if location is not None:
                progress.headers["location"] = location
            if 200 <= status < 300:
                return await _read_body(response, limits, progress)
            await _drain(response, progress)
            if status in _REDIRECTS and location:
                target = _redirect_target(target, location)
                permanent = permanent and status in _PERMANENT_REDIRECTS
                if permanent:
                    progress.moved_to = str(target)
                continue
            if status == 304:
                return None
            raise _Failure(_status_text(response))
    raise _Failure(f"too many redirects (more than {limits.max_redirects})")


def _checked_url(text: str, *, redirected: bool) -> httpx.URL:
    # The scheme is read before httpx parses, since httpx rejects opaque URLs
    # such as "javascript:…" with a message that does not name the scheme.
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError as exc:
        raise _Failure(f"invalid URL: {exc}") from None
    if scheme not in ("http", "https"):
        if not scheme:
            raise _Failure(f"invalid URL: {text!r} does not start with http:// or https://")
        prefix = "redirect to " if redirected else ""
        raise _Failure(f"{prefix}unsupported URL scheme {scheme!r}")
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid URL: {exc}") from None
    if not url.host:
        raise _Failure(f"invalid URL: {text!r} has no host")
    if b"%" in url.raw_host:  # httpx escapes a space in the host instead of refusing it
        raise _Failure(f"invalid URL: {text!r} has an invalid host")
    return url


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    location = location.strip()
    if urlsplit(location).scheme:  # absolute: vet it before httpx tries to join it
        return _checked_url(location, redirected=True)
    try:
        target = current.join(location)
    except httpx.InvalidURL as exc:
        raise _Failure(f"invalid redirect location {location!r}: {exc}") from None
    return _checked_url(str(target), redirected=True)


def _status_text(response: httpx.Response) -> str:
    code = response.status_code
    reason = response.reason_phrase.strip()[:80]
    if not reason:
        with contextlib.suppress(ValueError):
            reason = http.HTTPStatus(code).phrase
    text = f"HTTP {code} {reason}".rstrip()
    if code in _REDIRECTS:
        text += " without a Location header"
    return text


async def _read_body(response: httpx.Response, limits: FetchLimits, progress: _Progress) -> bytes:
    too_big = f"response body exceeds {_size(limits.max_body_bytes)} limit"
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _Failure(too_big)
    decoder = _decoder_for(response.headers.get("content-encoding", ""), limits.max_decoded_bytes)
    pieces: list[bytes] = []
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        progress.wire_bytes += len(chunk)
        if received > limits.max_body_bytes:
            raise _Failure(too_big)
        pieces.append(decoder.feed(chunk))
    pieces.append(decoder.flush())
    return b"".join(pieces)


async def _drain(response: httpx.Response, progress: _Progress) -> None:
    """Read a small redirect, 304 or error body so the connection can be reused.

    Anything large, slow or broken is abandoned instead (closing the
    connection): it must not change the outcome, which the status decides.
    """
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > _DRAIN_BYTES:
        return
    received = 0
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for chunk in response.aiter_raw():
                received += len(chunk)
                progress.wire_bytes += len(chunk)
                if received > _DRAIN_BYTES:
                    return


# --------------------------------------------------------------------------- error text


def _describe(exc: Exception, limits: FetchLimits, progress: _Progress) -> str:
    """Turn an exception into the short text users see in `status` output."""
    if isinstance(exc, _Failure):
        return str(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return f"connect timeout after {_seconds(limits.connect_timeout)}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"read timeout after {_seconds(limits.read_timeout)}"
    if isinstance(exc, httpx.WriteTimeout):
        return f"write timeout after {_seconds(limits.read_timeout)}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {exc}"
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        if "without sending a response" in text:
            return "server closed the connection without a response"
        if "incomplete" in text or "complete message body" in text:
            return "server closed the connection before the body was complete"
        return f"HTTP protocol error: {text}"
    if isinstance(exc, httpx.LocalProtocolError):
        return f"invalid request: {exc}"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return f"invalid URL: {exc}"
    if isinstance(exc, httpx.TransportError):
        return _network_text(exc, progress.final_url)
    return f"{type(exc).__name__}: {exc}"


def _network_text(exc: httpx.TransportError, url: str) -> str:
    """Name the OS-level cause (refused, DNS, TLS…) hidden in the exception chain."""
    cause = _os_error_in(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS error: {cause.verify_message or cause.reason}"
    if isinstance(cause, ssl.SSLError):  # reasons are OpenSSL constants like WRONG_VERSION_NUMBER
        reason = cause.reason.replace("_", " ").lower() if cause.reason else str(cause)
        return f"TLS error: {reason}"
    if isinstance(cause, socket.gaierror):
        host = httpx.URL(url).host
        if cause.errno == socket.EAI_AGAIN:
            return f"could not resolve host {host} (temporary DNS failure)"
        return f"could not resolve host {host}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by the server"
    if cause is not None and cause.strerror:
        return cause.strerror[:1].lower() + cause.strerror[1:]
    if cause is not None and str(cause) == "All connection attempts failed":  # anyio, no detail
        return "could not connect"
    return str(exc) or type(exc).__name__


def _os_error_in(exc: BaseException) -> OSError | None:
    """The most telling OSError behind `exc`.

    httpx wraps httpcore's error, which wraps anyio's generic "All connection
    attempts failed", which wraps the real error, or a group of them when the
    host has several addresses. A refusal beats other errors in a group: it
    proves the host was reached, while the others are often IPv6 noise.
    """
    generic: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            errors = [e for e in current.exceptions if isinstance(e, OSError)]
            refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
            if refused or errors:
                return (refused or errors)[0]
        if isinstance(current, OSError):
            if current.errno is not None:
                return current
            generic = generic or current
        current = current.__cause__ or current.__context__
    return generic


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------- content decoding


class _Decoder:
    """Identity; subclasses undo one Content-Encoding.

    Every decoder counts what it emits against `budget` and is asked for at
    most one byte past it at a time, so a bomb fails at the cap having cost
    only that much memory and CPU.
    """

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._left = budget

    def feed(self, data: bytes) -> bytes:
        return self._take(data)

    def flush(self) -> bytes:
        return b""

    def _take(self, piece: bytes) -> bytes:
        self._left -= len(piece)
        if self._left < 0:
            raise _Failure(f"decompressed body exceeds {_size(self._budget)} limit")
        return piece


class _ZlibDecoder(_Decoder):
    """gzip, or deflate whose framing (zlib or raw) is chosen by `_DeflateDecoder`."""

    def __init__(self, budget: int, name: str, wbits: int | None) -> None:
        super().__init__(budget)
        self._name = name
        self._z = None if wbits is None else zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> bytes:
        if self._z is None or self._z.eof:
            return b""  # bytes after the end of the stream are ignored, as browsers do
        pieces = []
        while True:
            try:
                piece = self._z.decompress(data, self._left + 1)
            except zlib.error as exc:
                raise _Failure(f"could not decode {self._name} body: {exc}") from None
            pieces.append(self._take(piece))
            data = self._z.unconsumed_tail
            if not piece or self._z.eof:
                break
        return b"".join(pieces)

    def flush(self) -> bytes:
        # Truncated streams are accepted like browsers do; the parser decides.
        if self._z is None:
            return b""
        try:
            return self._take(self._z.flush())
        except zlib.error as exc:
            raise _Failure(f"could not decode {self._name} body: {exc}") from None


class _DeflateDecoder(_ZlibDecoder):
    """'deflate' should be zlib-wrapped (RFC 9110) but many servers send it raw.

    The zlib header's first two bytes identify it, so wait for them.
    """

    def __init__(self, budget: int) -> None:
        super().__init__(budget, "deflate", None)
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            wrapped = data[0] & 0x0F == 8 and int.from_bytes(data[:2], "big") % 31 == 0
            self._z = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return super().feed(data)

    def flush(self) -> bytes:
        if self._head:
            raise _Failure("could not decode deflate body: truncated")
        return super().flush()


class _BrotliDecoder(_Decoder):
    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self._brotli = brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        if self._brotli.is_finished():
            return b""
        pieces = []
        try:
            pieces.append(
                self._take(self._brotli.process(data, output_buffer_limit=self._left + 1))
            )
            # Past the output limit brotli keeps the rest of the input inside
            # and must be drained with empty input before it accepts more.
            while not self._brotli.can_accept_more_data():
                piece = self._brotli.process(b"", output_buffer_limit=self._left + 1)
                pieces.append(self._take(piece))
                if not piece:
                    break
        except brotli.error as exc:
            raise _Failure(f"could not decode br body: {exc}") from None
        return b"".join(pieces)


class _Chain(_Decoder):
    """Several codings, e.g. `Content-Encoding: gzip, br`, undone last first."""

    def __init__(self, stages: list[_Decoder]) -> None:
        super().__init__(0)
        self._stages = stages

    def feed(self, data: bytes) -> bytes:
        for stage in self._stages:
            data = stage.feed(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for stage in self._stages:
            data = stage.feed(data) + stage.flush()
        return data


def _decoder_for(content_encoding: str, budget: int) -> _Decoder:
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    stages: list[_Decoder] = []
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding in ("gzip", "x-gzip"):
            stages.append(_ZlibDecoder(budget, coding, 16 + zlib.MAX_WBITS))
        elif coding == "deflate":
            stages.append(_DeflateDecoder(budget))
        elif coding == "br":
            stages.append(_BrotliDecoder(budget))
        else:
            raise _Failure(f"unsupported Content-Encoding {coding!r}")
    if not stages:
        return _Decoder(budget)
    return stages[0] if len(stages) == 1 else _Chain(stages)
