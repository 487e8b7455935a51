"""What the benchmarks share: the corpus server, warming it, and timing child processes.

Deliberately light on imports: the bench process is the parent of every timed
process, and a child inherits its parent's RSS high-water mark across fork and
exec, so this module never imports the aggregator, `reader` or anything big.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "bench" / "feedcorpus.py"
BENCH = ROOT / "bench"
CATEGORIES = ("tech", "photo", "news", "science")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _drain(url: str) -> int:
    size = 0
    with urllib.request.urlopen(url, timeout=120) as response:
        while chunk := response.read(65536):
            size += len(chunk)
    return size


def warm(urls: list[str]) -> int:
    """Fetch every URL once, unconditionally, so the server has built each document.

    Bodies are read and dropped: holding them would raise this process's RSS
    high-water mark, which every later child inherits across fork and exec.
    Returns the bytes received.
    """
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return sum(pool.map(_drain, urls))


def write_config(folder: Path, urls: list[str], categories: list[str]) -> Path:
    """A feeds.yaml (as JSON) in `folder`; its database and outputs go to folder/var."""
    folder.mkdir(parents=True, exist_ok=True)
    feeds = [{"url": url, "categories": [c]} for url, c in zip(urls, categories, strict=True)]
    config = folder / "feeds.yaml"
    config.write_text(
        json.dumps({"site": {"base_url": "https://bench.example/"}, "feeds": feeds}),
        encoding="utf-8",
    )
    return config


@dataclass(frozen=True)
class Child:
    """One finished child process: wall time, exit code, its own peak RSS, its output."""

    argv: tuple[str, ...]
    seconds: float
    exit_code: int
    peak_rss_mb: float
    stdout: str
    stderr: str

    def check(self) -> Child:
        if self.exit_code != 0:
            tail = (self.stdout + self.stderr)[-3000:]
            raise SystemExit(f"{' '.join(self.argv)} exited {self.exit_code}:\n{tail}")
        return self

    def json(self) -> dict[str, Any]:
        """The last line of stdout, which the bench drivers print as JSON."""
        lines = self.stdout.strip().splitlines()
        value: dict[str, Any] = json.loads(lines[-1]) if lines else {}
        return value


def run_child(argv: list[str], timeout: float = 1800) -> Child:
    """Run argv to completion; wall time as a cron job sees it, peak RSS from wait4.

    wait4 gives the rusage of this one child (RUSAGE_CHILDREN would be the
    maximum over every child so far). Output goes to temporary files, so the
    child never blocks on a full pipe while we wait.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(
            argv=tuple(argv),
            seconds=seconds,
            exit_code=proc.returncode,
            peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


class CorpusServer:
    """../shared/bench/feedcorpus.py serving `feeds` x `items` on 127.0.0.1.

    `round` moves every feed on; the hit log tells which requests a child made
    and how many of them were answered 304.
    """

    def __init__(self, folder: Path, feeds: int, items: int, overlap: float) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.feeds, self.items = feeds, items
        self.round_file = folder / "round"
        self.round_file.write_text("0")
        self.hit_log = folder / "hits.log"
        self.hit_log.touch()
        self.port = free_port()
        self.urls = [f"http://127.0.0.1:{self.port}/feed/{i}.xml" for i in range(feeds)]
        self._argv = [
            sys.executable,
            str(CORPUS),
            "serve",
            *("--feeds", str(feeds), "--items", str(items), "--port", str(self.port)),
            *("--overlap", str(overlap), "--round-file", str(self.round_file)),
            *("--hit-log", str(self.hit_log)),
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CorpusServer:
        self._proc = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL)
        wait_for(self.urls[0])
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def set_round(self, number: int) -> None:
        self.round_file.write_text(str(number))

    def log_position(self) -> int:
        return self.hit_log.stat().st_size

    def hits_since(self, position: int) -> collections.Counter[str]:
        """Responses by status ("200", "304"...) logged after `position`."""
        with self.hit_log.open("rb") as log:
            log.seek(position)
            return collections.Counter(
                line.split()[2].decode() for line in log.read().splitlines() if line.strip()
            )
