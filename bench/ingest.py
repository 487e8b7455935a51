"""Time `aggregator update` on the synthetic corpus served on 127.0.0.1.

    .venv/bin/python bench/ingest.py --feeds 200 --items 50

Starts ../shared/bench/feedcorpus.py, warms it (it builds each document on
first request), then times whole `aggregator` processes, as a cron job sees
them: a cold ingest, a re-poll where every feed gained one entry, a re-poll
where every feed answers 304, a full `build`, then `export-posts` of every
story and the same export again (nothing changed). Prints figures; asserts
nothing. Peak RSS is that of the `aggregator` process (children's maximum).
Ours only; `make bench` runs bench/compare.py, the comparison with `reader`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _harness import CORPUS, free_port, wait_for, warm


@dataclass(frozen=True)
class Run:
    seconds: float
    exit_code: int
    output: str


def aggregator(config: Path, *args: str) -> Run:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return Run(time.perf_counter() - started, done.returncode, done.stdout + done.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--keep", action="store_true", help="keep the database and outputs")
    options = parser.parse_args()
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} is absent (../shared is not checked out)")
        return 0

    work = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    # The config the aggregator validates is kept with the rest, not in the user's cache.
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    round_file = work / "round"
    round_file.write_text("0")
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(CORPUS),
            "serve",
            "--feeds",
            str(options.feeds),
            "--items",
            str(options.items),
            "--port",
            str(port),
            "--overlap",
            str(options.overlap),
            "--round-file",
            str(round_file),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        urls = [f"http://127.0.0.1:{port}/feed/{i}.xml" for i in range(options.feeds)]
        wait_for(urls[0])
        feeds = [
            {"url": url, "categories": [("tech", "photo", "news", "science")[i % 4]]}
            for i, url in enumerate(urls)
        ]
        config = work / "feeds.yaml"
        config.write_text(
            json.dumps({"site": {"base_url": "https://bench.example/"}, "feeds": feeds}),
            encoding="utf-8",
        )
        warm(urls)
        cold = aggregator(config, "update")
        round_file.write_text("1")
        warm(urls)
        steady = aggregator(config, "update")
        all_304 = aggregator(config, "update")
        build = aggregator(config, "build")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        posts = work / "posts"
        export = aggregator(config, "export-posts", str(posts), "--raw")
        export_again = aggregator(config, "export-posts", str(posts), "--raw")
        export_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        server.terminate()
        server.wait()

    database = work / "var" / "aggregator.db"
    with sqlite3.connect(database) as db:
        entries = db.execute("SELECT count(*) FROM stories").fetchone()[0]
    db_bytes = sum(p.stat().st_size for p in database.parent.glob("aggregator.db*"))
    total = options.feeds * options.items
    runs = {"cold": cold, "steady": steady, "304": all_304, "build": build, "export": export}
    for name, run in runs.items():
        if run.exit_code != 0:
            print(f"{name} exited {run.exit_code}:\n{run.output[-2000:]}")
    print(f"corpus: {options.feeds} feeds x {options.items} items, overlap {options.overlap}")
    print(f"{'measure':<34}{'value':>14}")
    rows = [
        ("cold ingest (entries/s)", f"{total / cold.seconds:,.0f}"),
        ("cold ingest (s)", f"{cold.seconds:.2f}"),
        ("one new entry per feed (s)", f"{steady.seconds:.2f}"),
        ("all-304 re-poll (s)", f"{all_304.seconds:.2f}"),
        ("full build (s)", f"{build.seconds:.2f}"),
        ("peak RSS (MB)", f"{peak_mb:.0f}"),
        ("export-posts, all written (s)", f"{export.seconds:.2f}"),
        ("export-posts, none changed (s)", f"{export_again.seconds:.2f}"),
        ("peak RSS with exports (MB)", f"{export_peak_mb:.0f}"),
        ("stories stored", f"{entries:,}"),
        ("database bytes per story", f"{db_bytes / max(entries, 1):,.0f}"),
    ]
    for label, value in rows:
        print(f"{label:<34}{value:>14}")
    if options.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
