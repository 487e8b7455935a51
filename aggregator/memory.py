"""Handing memory the storing process has freed back to the system, where the C library can.

Contains no business logic.

Most of what an ingest frees is bodies: fetched by the fetching thread,
unpickled by the thread that reads the worker's answers, dropped by the
storing thread. glibc gives each thread its own heap and keeps what is
freed in each for later, so the process's resident size climbs through a
first poll (some 20 MB of free but resident memory by its end) though what
is live stays flat. `malloc_trim` returns those free pages; it takes well
under a millisecond a call, so once per stored batch costs nothing to notice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable


def release_free_memory() -> None:
    """Return freed heap pages to the system; nothing where the C library has no way to."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes  # here: most runs store nothing, and start-up counts

        return ctypes.CDLL(None).malloc_trim
    except (ImportError, OSError, AttributeError):  # not glibc: musl, macOS, Windows
        return None
