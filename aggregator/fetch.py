"""HTTP polling of feeds: conditional GET within hard limits, one result per URL.

The only module that imports an HTTP client (aiohttp, and yarl for its URLs);
it knows nothing of storage or parsing. Callers hand over (URL, validators)
pairs and get `FetchResult`s back in completion order, so a poll can parse and
store one feed while others are still downloading. Downloads run on one
asyncio loop in a background thread, and at most `concurrency` finished
results wait there for the caller's thread, which is what keeps memory flat:
a slow consumer stalls the downloads instead of piling up bodies.

aiohttp rather than httpx because most polls answer 304 Not Modified, which
makes the client's own cost per request most of a poll's time: about 1 ms
with httpx, a tenth of that with aiohttp. All requests of one `fetch_iter`
share one session whose connector keeps connections alive and reuses them,
at most `concurrency` at once, as many as there are workers, so none waits
for the pool.

Nothing here raises for a problem with one feed: every failure becomes a
result whose `error` is short text meant for a human reading `status` output.
aiohttp neither follows redirects nor decodes Content-Encoding for us: our
code does both, so that every redirect target is vetted (scheme, host, loop
limit) and a decompression bomb is stopped at the cap instead of being
inflated first and measured afterwards.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import http
import os
import re
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp
import aiohttp.http_exceptions
import brotli
from yarl import URL

from aggregator import USER_AGENT
from aggregator.errors import cause_of
from aggregator.models import CacheValidators, FetchLimits, FetchResult

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)
ACCEPT_ENCODING = "gzip, deflate, br"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT_REDIRECTS = frozenset({301, 308})
_READ_BYTES = 256 * 1024
# aiohttp's own defaults are 8190 bytes and 128 headers; a long Content-Security-Policy
# alone can pass 8 KB, while 128 headers of 16 KB still bound a response's head to 2 MB.
_MAX_HEADER_BYTES = 16 * 1024
_MAX_HEADERS = 128
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0
_NO_VALIDATORS = CacheValidators()
#: How often a caller waiting for the next download looks whether it was asked to stop.
_STOP_LOOK_SECONDS = 0.1
_DEFAULT_LIMITS = FetchLimits()


def fetch_iter(
    requests: Iterable[tuple[str, CacheValidators]],
    limits: FetchLimits,
    user_agent: str = USER_AGENT,
    stop: threading.Event | None = None,
) -> Generator[FetchResult, None, None]:
    """Fetch every URL, yielding each result as soon as its download finishes.

    `requests` is read up front in the caller's thread, so it may come from
    thread-bound resources such as a database cursor. Closing the generator
    early cancels the downloads still running and waits for the thread to end.
    So does setting `stop`, from any thread: the caller may be waiting for a
    download that takes its whole deadline, and `run`, stopping, must not.
    """
    items = list(requests)
    if not items or (stop is not None and stop.is_set()):
        return
    run = _Background(items, limits, user_agent, stop)
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
    """An event loop in a thread that hands finished results to the caller's thread.

    Results wait in a deque that the caller empties a batch at a time. Handing
    them over one by one through the loop (a `queue.get()` sent with
    run_coroutine_threadsafe) cost about 0.2 ms each in thread switches, more
    than a 304 exchange itself. A result with a body takes a slot, given back
    as it reaches the caller, so at most `concurrency` finished bodies wait
    (plus one per worker that cannot place its own), however they were
    batched: that is what bounds memory when the caller is slower than the
    downloads. A result without one (a 304, an error) takes none: giving it
    back would wake the loop from the caller's thread once per feed, a tenth
    of a poll where every server answers 304.

    The loop stays up until the caller calls `stop`, even after the last
    download, so giving a slot back can always reach it.
    """

    def __init__(
        self,
        items: list[tuple[str, CacheValidators]],
        limits: FetchLimits,
        ua: str,
        stop: threading.Event | None = None,
    ):
        self._items = items
        self._stop = stop
        self._limits = limits
        self._ua = ua
        self._loop = asyncio.new_event_loop()
        self._space = asyncio.Semaphore(max(1, limits.concurrency))
        self._arrived = threading.Condition(threading.Lock())
        self._ready: collections.deque[_Item] = collections.deque()  # guarded by _arrived
        self._taken: collections.deque[_Item] = collections.deque()  # the caller's alone
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="aggregator-fetch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def next(self) -> FetchResult | None:
        """The next finished result, or None once every URL has been reported or `stop` is set."""
        stop = self._stop
        if stop is not None and stop.is_set():
            return None
        if not self._taken:
            with self._arrived:
                while not self._ready:
                    # Setting an Event cannot wake this Condition, so look now and then.
                    self._arrived.wait(None if stop is None else _STOP_LOOK_SECONDS)
                    if stop is not None and stop.is_set():
                        return None
                self._taken, self._ready = self._ready, self._taken
        item = self._taken.popleft()
        if isinstance(item, BaseException):
            raise item
        if item is not None and item.body is not None:
            self._loop.call_soon_threadsafe(self._space.release)
        return item

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join()

    async def _hand_over(self, item: _Item) -> None:
        if isinstance(item, FetchResult) and item.body is not None:
            await self._space.acquire()
        with self._arrived:
            self._ready.append(item)
            self._arrived.notify()

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
            proxies = _Proxies()
            async with _session(self._limits, self._ua) as session:
                todo = iter(self._items)
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(max(1, self._limits.concurrency), len(self._items))):
                        group.create_task(self._worker(session, proxies, todo))
        except Exception as exc:  # a bug, not a feed problem: let the caller see it
            await self._hand_over(exc)
        else:
            await self._hand_over(None)

    async def _worker(
        self,
        session: aiohttp.ClientSession,
        proxies: _Proxies,
        todo: Iterator[tuple[str, CacheValidators]],
    ) -> None:
        for url, validators in todo:
            result = await _fetch(session, proxies, url, validators, self._limits)
            await self._hand_over(result)


def _session(limits: FetchLimits, user_agent: str) -> aiohttp.ClientSession:
    pool = max(1, limits.concurrency)
    connector = aiohttp.TCPConnector(
        limit=pool,
        limit_per_host=pool,
        # getaddrinfo, as every other program on the machine resolves names
        # (/etc/hosts, nsswitch), whether or not aiodns happens to be installed.
        resolver=aiohttp.ThreadedResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        # The total deadline is enforced around each exchange by `_fetch`,
        # which can then say which limit a failure crossed.
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=limits.connect_timeout, sock_read=limits.read_timeout
        ),
        auto_decompress=False,
        max_line_size=_MAX_HEADER_BYTES,
        max_field_size=_MAX_HEADER_BYTES,
        max_headers=_MAX_HEADERS,
    )


class _Proxies:
    """The proxies HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY name, read once a run.

    Not aiohttp's trust_env: it reads them, and ~/.netrc, again for every
    request, which costs more than all the rest of a 304 exchange.
    """

    def __init__(self) -> None:
        self._env = urllib.request.getproxies_environment()
        self._by_scheme = {
            scheme: _with_scheme(proxy)
            for scheme in ("http", "https")
            if (proxy := self._env.get(scheme) or self._env.get("all"))
        }
        self._bypassed: dict[str, bool] = {}

    def for_url(self, url: URL) -> str | None:
        proxy = self._by_scheme.get(url.scheme)
        if proxy is None:
            return None
        host = url.raw_host or ""
        bypassed = self._bypassed.get(host)
        if bypassed is None:
            bypassed = self._bypassed[host] = bool(
                # Undocumented, hence missing from typeshed, but what urllib itself uses.
                urllib.request.proxy_bypass_environment(host, self._env)  # type: ignore[attr-defined]
            )
        return None if bypassed else proxy


def _with_scheme(proxy: str) -> str:
    return proxy if "://" in proxy else f"http://{proxy}"


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
    session: aiohttp.ClientSession,
    proxies: _Proxies,
    url: str,
    validators: CacheValidators,
    limits: FetchLimits,
) -> FetchResult:
    fetched_at = datetime.now(UTC)
    started = time.monotonic()
    progress = _Progress(final_url=url)
    body: bytes | None = None
    error: str | None = None
    deadline = asyncio.timeout(limits.deadline)
    try:
        async with deadline:
            body = await _exchange(session, proxies, url, validators, limits, progress)
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
    session: aiohttp.ClientSession,
    proxies: _Proxies,
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
        proxy = proxies.for_url(target)
        async with session.get(
            target, headers=headers, allow_redirects=False, proxy=proxy
        ) as response:
            status = response.status
            progress.status = status
            progress.headers = _plain_headers(response.headers)
            if 200 <= status < 300:
                return await _read_body(response, limits, progress)
            await _drain(response, progress)
            location = progress.headers.get("location")
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


def _plain_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased names, repeated fields joined by commas, text safe to store.

    aiohttp keeps repeated fields apart and decodes bytes that are not UTF-8
    into lone surrogates, which a database refuses; such a value is read as
    Latin-1 instead, the way HTTP/1.1 used to define header text.
    """
    plain: dict[str, str] = {}
    for name, value in headers.items():
        if not value.isascii():
            raw = value.encode("utf-8", "surrogateescape")
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = raw.decode("latin-1")
        key = name.lower()
        plain[key] = f"{plain[key]}, {value}" if key in plain else value
    return plain


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = re.compile(r"[A-Za-z0-9._:-]+")


def _checked_url(text: str, *, redirected: bool) -> URL:
    # The scheme is read first so that an opaque URL such as "javascript:…"
    # is refused by naming its scheme.
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError as exc:
        raise _Failure(f"invalid URL: {exc}") from None
    if scheme not in ("http", "https"):
        if not scheme:
            raise _Failure(f"invalid URL: {text!r} does not start with http:// or https://")
        prefix = "redirect to " if redirected else ""
        raise _Failure(f"{prefix}unsupported URL scheme {scheme!r}")
    # Checked here because yarl accepts control characters (keeping them in a
    # host, percent-encoding them elsewhere) and urlsplit drops tabs and line
    # breaks without a word.
    if bad := _CONTROL.search(text):
        raise _Failure(
            f"invalid URL: Invalid non-printable ASCII character in URL, "
            f"{bad[0]!r} at position {bad.start()}."
        )
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise _Failure(f"invalid URL: {exc}") from None
    if not url.raw_host:
        raise _Failure(f"invalid URL: {text!r} has no host")
    if not _HOST.fullmatch(url.raw_host):  # yarl keeps a space or a "%" in a host as it is
        raise _Failure(f"invalid URL: {text!r} has an invalid host")
    return url


def _redirect_target(current: URL, location: str) -> URL:
    location = location.strip()
    try:
        absolute = bool(urlsplit(location).scheme)
    except ValueError as exc:
        raise _Failure(f"invalid redirect location {location!r}: {exc}") from None
    if absolute:  # vet it before it is joined with anything
        return _checked_url(location, redirected=True)
    if _CONTROL.search(location):
        raise _Failure(f"invalid redirect location {location!r}")
    try:
        target = current.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise _Failure(f"invalid redirect location {location!r}: {exc}") from None
    return _checked_url(str(target), redirected=True)


def _status_text(response: aiohttp.ClientResponse) -> str:
    code = response.status
    reason = (response.reason or "").strip()[:80]
    if not reason:
        with contextlib.suppress(ValueError):
            reason = http.HTTPStatus(code).phrase
    text = f"HTTP {code} {reason}".rstrip()
    if code in _REDIRECTS:
        text += " without a Location header"
    return text


async def _read_body(
    response: aiohttp.ClientResponse, limits: FetchLimits, progress: _Progress
) -> bytes:
    too_big = f"response body exceeds {_size(limits.max_body_bytes)} limit"
    declared = progress.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _Failure(too_big)
    decoder = _decoder_for(progress.headers.get("content-encoding", ""), limits.max_decoded_bytes)
    pieces: list[bytes] = []
    received = 0
    # auto_decompress=False: these are the bytes as sent, only de-chunked.
    # Asking for no more than one byte past the cap stops the count there.
    while chunk := await response.content.read(
        min(_READ_BYTES, limits.max_body_bytes + 1 - received)
    ):
        received += len(chunk)
        progress.wire_bytes += len(chunk)
        if received > limits.max_body_bytes:
            raise _Failure(too_big)
        pieces.append(decoder.feed(chunk))
    pieces.append(decoder.flush())
    return b"".join(pieces)


async def _drain(response: aiohttp.ClientResponse, progress: _Progress) -> None:
    """Read a small redirect, 304 or error body so the connection can be reused.

    Anything large, slow or broken is abandoned instead (closing the
    connection): it must not change the outcome, which the status decides.
    """
    if response.content.at_eof():  # a 304 or an empty body: nothing to wait for
        return
    declared = progress.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > _DRAIN_BYTES:
        return
    received = 0
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for chunk in response.content.iter_any():
                received += len(chunk)
                progress.wire_bytes += len(chunk)
                if received > _DRAIN_BYTES:
                    return


# --------------------------------------------------------------------------- error text


def _describe(exc: Exception, limits: FetchLimits, progress: _Progress) -> str:
    """Turn an exception into the short text users see in `status` output."""
    if isinstance(exc, _Failure):
        return str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"connect timeout after {_seconds(limits.connect_timeout)}"
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return f"read timeout after {_seconds(limits.read_timeout)}"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return f"timeout: {exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_text(exc)
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):  # the response could not be parsed
        if cause_of(exc, aiohttp.http_exceptions.LineTooLong) is not None:
            return f"response header line exceeds {_size(_MAX_HEADER_BYTES)} limit"
        if exc.message == "Too many headers received":
            return f"more than {_MAX_HEADERS} response headers"
        # aiohttp's parser writes the offending bytes on a line of their own
        # and points at the culprit with a caret on the next.
        parts = [line.strip() for line in exc.message.splitlines()]
        text = " ".join(part for part in parts if part and part != "^")
        return f"HTTP protocol error: {text[:200] or exc.status}"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return _network_text(exc, progress.final_url)
    return f"{type(exc).__name__}: {exc}"


def _payload_text(exc: aiohttp.ClientPayloadError) -> str:
    """Why a body stopped short; aiohttp keeps the connection's error only as text."""
    text = str(exc)
    if "ConnectionResetError" in text:
        return "connection reset by the server"
    if "not completed" in text:
        return "server closed the connection before the body was complete"
    return f"HTTP protocol error: {text}"


def _network_text(exc: BaseException, url: str) -> str:
    """Name the OS-level cause (refused, DNS, TLS…) hidden in the exception chain."""
    cause = _os_error_in(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS error: {cause.verify_message or cause.reason}"
    if isinstance(cause, ssl.SSLError):  # reasons are OpenSSL constants like WRONG_VERSION_NUMBER
        reason = cause.reason.replace("_", " ").lower() if cause.reason else str(cause)
        return f"TLS error: {reason}"
    if isinstance(cause, socket.gaierror):
        host = urlsplit(url).hostname
        if cause.errno == socket.EAI_AGAIN:
            return f"could not resolve host {host} (temporary DNS failure)"
        return f"could not resolve host {host}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset by the server"
    if cause is not None and cause.errno:
        # Not `strerror`: asyncio puts "Connect call failed (address)" there.
        text = os.strerror(cause.errno)
        return text[:1].lower() + text[1:]
    if isinstance(exc, aiohttp.ClientConnectorError):  # no attempt said why
        return "could not connect"
    return str(exc) or type(exc).__name__


_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")


def _os_error_in(exc: BaseException) -> OSError | None:
    """The most telling OSError behind `exc`.

    aiohttp's own connection errors are OSErrors that only repeat their
    cause's numbers under a message of their own, so they are looked through.
    When a host has several addresses, aiohappyeyeballs folds the failed
    attempts into one OSError whose text is all that is left of them
    ("Multiple exceptions: [Errno 101] …, [Errno 111] …"). A refusal beats the
    others: it proves the host was reached, while the others are often IPv6
    noise.
    """
    generic: OSError | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientConnectorError):
            current = current.os_error
            continue
        if isinstance(current, aiohttp.ClientError):
            if isinstance(current, OSError) and current.errno is not None:
                generic = generic or current  # its numbers, if nothing behind it says more
        elif isinstance(current, OSError):
            if current.errno is not None:
                return current
            numbers = [int(n) for n in _ERRNO_IN_TEXT.findall(str(current))]
            if numbers:
                number = errno.ECONNREFUSED if errno.ECONNREFUSED in numbers else numbers[0]
                return OSError(number, os.strerror(number))  # of the subclass errno implies
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
