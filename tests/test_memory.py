"""Freed memory handed back to the system (glibc only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from aggregator.memory import _malloc_trim

# Run in a process of its own: the test run's heap would blur the figures.
PROGRAM = textwrap.dedent(
    """
    import re, threading
    from aggregator.memory import release_free_memory

    def resident_mb():
        status = open("/proc/self/status").read()
        return int(re.search(r"RssAnon:\\s+(\\d+)", status).group(1)) // 1024

    kept = []

    def fetch_like():  # bodies made on one thread, as the fetching thread makes them
        blocks = [bytes(32 * 1024) for _ in range(2000)]
        kept.extend(blocks[7::8])  # one in eight stays: free() cannot shrink the heap's top

    thread = threading.Thread(target=fetch_like)
    thread.start()
    thread.join()
    before = resident_mb()
    release_free_memory()
    print(before, resident_mb())
    """
)


@pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)")
def test_memory_freed_on_another_thread_leaves_the_process() -> None:
    answer = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
    )
    before, after = map(int, answer.stdout.split())
    assert after <= before - 5, (before, after)
