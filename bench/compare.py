"""Side-by-side benchmark: our `aggregator update` against lemon24's `reader` on one corpus.

    .venv/bin/python bench/compare.py                      # what `make bench` runs
    .venv/bin/python bench/compare.py --feeds 40 --items 10 --big-feeds 200 --big-items 2

bench/RESULTS.md holds `make bench`'s sizes only: a run at other sizes prints
its table and writes it only where --out says.

Starts ../shared/bench/feedcorpus.py and, for each phase, warms it (it builds
each document on its first request) and then runs both sides, one after the
other, on the same bytes, each as a process of its own:

- ours: bench/_ours.py, which runs the `aggregator --config feeds.yaml update`
  command in-process (as a cron job runs it, publishing what changed) with
  timers around the update and its publishing;
- reader: bench/_reader.py, one `update_feeds(scheduled=False, workers=4)`,
  timed in-process too.

Phases: cold ingest (round 0); steady state, every feed one entry on (round 1);
a re-poll where every feed answers 304. Each phase is run more than once by
each side, in turns and from the same starting state, and the best timing
counts (ATTEMPTS): this machine's speed wanders from minute to minute. Then
ours alone: a full rebuild of every output and an incremental publish after
the feeds of one category moved on (PUBLISH_ATTEMPTS times, the best of each
counting); and a cold `update` of --big-feeds x --big-items for peak RSS.
Each child's wall time is measured from here, its peak RSS read with wait4;
this process imports neither program, so no child inherits a large
high-water mark from it.

Prints a table (ours, reader, ratio, target, met) and writes it to --out with
the machine's core count. Asserts nothing: speed is never a test failure.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _harness import BENCH, CATEGORIES, CORPUS, ROOT, Child, CorpusServer, run_child, warm
from _harness import write_config as _write_config

PY = sys.executable
PHASES = ("cold", "steady", "304")
#: Attempts per side and phase, each from the same starting state; the best timing counts.
#: This machine's speed wanders by a tenth and more from minute to minute. An all-304
#: re-poll is short, so a wander is a large part of it (reader's three attempts took
#: 1.89 to 2.90 s in one run), and five attempts of it cost both sides some 20 s.
ATTEMPTS = {"cold": 2, "steady": 2, "304": 5}
#: Attempts of ours' publishing (a full rebuild, then an incremental publish), each from the
#: same database and published folder. One attempt let a wander decide the incremental row:
#: 0.10 to 0.17 s for the same 14 files in three runs of one afternoon.
PUBLISH_ATTEMPTS = 3


# ---- running the sides ------------------------------------------------------------


@dataclass
class Run:
    """One side's child process in one phase, with the server's view of its requests."""

    child: Child
    hits: dict[str, int]
    data: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1

    @property
    def inner(self) -> float:
        """In-process seconds the driver measured (whole-process seconds if none)."""
        seconds: float = self.data.get("seconds", self.child.seconds)
        return seconds

    @property
    def peak_mb(self) -> float:
        """Peak RSS of the process, plus that of any reading workers it started.

        wait4 reports the larger of a process and its reaped children, not
        their sum, so ours adds its workers' peak (which it reports) to its own.
        """
        if "self_peak_rss_mb" in self.data:
            return float(self.data["self_peak_rss_mb"] + self.data["workers_peak_rss_mb"])
        return self.child.peak_rss_mb


def best_of(runs: list[Run]) -> Run:
    """Several attempts as one: the fastest whole process, the fastest in-process update, the
    largest peak of memory, and the requests of the last (each attempt makes the same)."""
    whole = min(runs, key=lambda run: run.child.seconds)
    inner = min(runs, key=lambda run: run.inner)
    largest = max(runs, key=lambda run: run.peak_mb)
    data = dict(inner.data)
    for key in ("self_peak_rss_mb", "workers_peak_rss_mb"):
        if key in largest.data:
            data[key] = largest.data[key]
    child = dataclasses.replace(whole.child, peak_rss_mb=largest.child.peak_rss_mb)
    return Run(child, runs[-1].hits, data, attempts=len(runs))


def best_publish(runs: list[Run]) -> Run:
    """Several publish attempts as one: the fastest full rebuild and the fastest incremental
    publish (every attempt does the same work from the same state), the rest the last's."""
    data = dict(runs[-1].data)
    for key in ("full_seconds", "incremental_seconds"):
        data[key] = min(run.data[key] for run in runs)
    return Run(runs[-1].child, runs[-1].hits, data, attempts=len(runs))


class Snapshot:
    """Files and folders copied aside, to put back before each attempt after the first."""

    def __init__(self, folder: Path, paths: list[Path]) -> None:
        self._saved = [(path, folder / f"{index}-{path.name}") for index, path in enumerate(paths)]
        folder.mkdir(parents=True, exist_ok=True)
        for path, copy in self._saved:
            _replace(path, copy)

    def restore(self) -> None:
        for path, copy in self._saved:
            _replace(copy, path)


def _replace(source: Path, target: Path) -> None:
    """Make `target` what `source` is: a copy of a file or folder, or absent."""
    if target.is_dir():
        shutil.rmtree(target)
    target.unlink(missing_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
    elif source.exists():
        shutil.copy2(source, target)


class Clock:
    """Progress lines on stderr: a full run takes minutes."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {text}", file=sys.stderr, flush=True)


def observed(server: CorpusServer, argv: list[str]) -> Run:
    position = server.log_position()
    child = run_child(argv).check()
    run = Run(child, dict(server.hits_since(position)))
    last = child.stdout.strip().rsplit("\n", 1)[-1]
    if last.startswith("{"):  # the drivers' JSON; `aggregator update` prints a table
        run.data = child.json()
    return run


def ours_cli(config: Path, *args: str) -> list[str]:
    """`aggregator --config CONFIG ARGS...` with timers: see bench/_ours.py."""
    return [PY, str(BENCH / "_ours.py"), "cli", "--config", str(config), *args]


def block_categories(count: int) -> list[str]:
    """Category of each feed: four contiguous blocks, so neighbours share a category.

    The corpus cross-posts items between neighbouring feeds; contiguous blocks
    let the incremental publish change exactly one category.
    """
    return [CATEGORIES[i * len(CATEGORIES) // count] for i in range(count)]


def inner_feeds(categories: list[str], wanted: str) -> list[int]:
    """Feeds of `wanted` whose neighbours are in `wanted` too (or absent)."""
    return [
        i
        for i, category in enumerate(categories)
        if category == wanted
        and all(categories[j] == wanted for j in (i - 1, i + 1) if 0 <= j < len(categories))
    ]


def write_config(folder: Path, urls: list[str]) -> Path:
    return _write_config(folder, urls, block_categories(len(urls)))


COUNT_ROWS = """
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as db:
    print(db.execute("SELECT count(*) FROM " + sys.argv[2]).fetchone()[0])
"""


def db_stats(database: Path, table: str) -> tuple[int, int]:
    """(bytes of the database with its -wal/-shm, rows of `table`), counted by a child."""
    size = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
    rows = int(run_child([PY, "-c", COUNT_ROWS, str(database), table]).check().stdout)
    return size, rows


# ---- the table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    measure: str
    ours: str
    reader: str
    ratio: str
    target: str
    met: bool | None

    def cells(self) -> list[str]:
        mark = {True: "✓ met", False: "✗ not met", None: ""}[self.met]
        return [self.measure, self.ours, self.reader, self.ratio, self.target, mark]


HEADER = ["measure", "ours", "reader", "ours vs reader", "target", "met"]


def speed_row(label: str, ours_s: float, reader_s: float, need: float, rate: int = 0) -> Row:
    """A timing row: seconds, or entries/s when `rate` entries were ingested."""
    speedup = reader_s / ours_s
    if rate:
        ours, reader = f"{rate / ours_s:,.0f}", f"{rate / reader_s:,.0f}"
    else:
        ours, reader = f"{ours_s:.2f}", f"{reader_s:.2f}"
    ratio = f"{speedup:.2f}× faster" if speedup >= 1 else f"{1 / speedup:.2f}× slower"
    return Row(label, ours, reader, ratio, f"≥ {need:g}× faster", speedup >= need)


def markdown(rows: list[Row]) -> str:
    return markdown_table([HEADER, *(row.cells() for row in rows)])


def markdown_table(table: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(table[0]), rule, *(line(r) for r in table[1:])])


def git_revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + (" + uncommitted changes" if git("status", "--porcelain") else "")


# ---- main ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000, help="feeds in the corpus (1000)")
    parser.add_argument("--items", type=int, default=50, help="entries per feed (50)")
    parser.add_argument(
        "--big-feeds", type=int, default=10000, help="feeds in the ours-only RSS run (10000)"
    )
    parser.add_argument(
        "--big-items",
        type=int,
        default=5,
        help="entries per feed in the big run (default 5: 10,000 x 5 holds as many "
        "entries as 1,000 x 50, so the RSS growth is that of ten times the feeds)",
    )
    parser.add_argument("--skip-big", action="store_true", help="no run at --big-feeds")
    parser.add_argument(
        "--overlap", type=float, default=0.1, help="share of cross-posted entries (0.1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown file for the table (default: bench/RESULTS.md at the default sizes, "
        "none at others)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and outputs")
    options = parser.parse_args()
    sizes = ("feeds", "items", "big_feeds", "big_items", "skip_big", "overlap")
    if options.out is None and all(
        getattr(options, size) == parser.get_default(size) for size in sizes
    ):
        options.out = BENCH / "RESULTS.md"
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} is absent (../shared is not checked out)")
        return 0

    clock = Clock()
    work = Path(tempfile.mkdtemp(prefix="aggregator-compare-"))
    clock.say(f"working in {work}")
    # The configs ours validates are kept with the rest, not in the user's cache.
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")
    baseline = run_child([PY, "-c", "pass"]).check()
    # Byte-compiled first, as an installed package is (pip compiles what it
    # installs, reader included): with PYTHONDONTWRITEBYTECODE set, an editable
    # checkout would otherwise be compiled from source by every timed process.
    run_child([PY, "-m", "compileall", "-q", str(ROOT / "aggregator")]).check()

    runs: dict[tuple[str, str], Run] = {}
    with CorpusServer(work / "corpus", options.feeds, options.items, options.overlap) as server:
        urls = server.urls
        config = write_config(work / "ours", urls)
        ours_db = work / "ours" / "var" / "aggregator.db"
        reader_db = work / "reader" / "reader.sqlite"
        reader_db.parent.mkdir()
        urls_file = work / "reader" / "urls.txt"
        urls_file.write_text("\n".join(urls), encoding="utf-8")
        # Not timed, on both sides: the database created and the feeds registered.
        run_child(ours_cli(config, "status", "--json")).check()
        run_child([PY, str(BENCH / "_reader.py"), "add", str(reader_db), str(urls_file)]).check()

        sides = {
            "ours": ours_cli(config, "update"),
            "reader": [PY, str(BENCH / "_reader.py"), "update", str(reader_db)],
        }
        # What an attempt changes: ours its database and published folder, reader its database.
        state = {
            "ours": [ours_db.parent],
            "reader": [reader_db.with_name(reader_db.name + end) for end in ("", "-wal", "-shm")],
        }
        for phase, round_number in zip(PHASES, (0, 1, None), strict=True):
            if round_number is not None:
                server.set_round(round_number)
                clock.say(f"{phase}: warming {len(urls)} feeds at round {round_number}")
                warm(urls)
            # Each attempt starts from the state the first one started from; the
            # sides take turns, so a slow spell of the machine falls on both.
            before = {
                side: Snapshot(work / "before" / side, paths) for side, paths in state.items()
            }
            attempts: dict[str, list[Run]] = {side: [] for side in sides}
            for attempt in range(ATTEMPTS[phase]):
                for side, argv in sides.items():
                    if attempt:
                        before[side].restore()
                    run = observed(server, argv)
                    attempts[side].append(run)
                    clock.say(
                        f"{phase}: {side}: {run.child.seconds:.2f} s whole, {run.inner:.2f} s "
                        f"in-process, {run.peak_mb:.0f} MB, responses {run.hits}"
                    )
                    if run.data.get("broken"):
                        raise SystemExit(f"{phase}: {side}: {run.data['broken']} feeds failed")
            for side in sides:
                runs[phase, side] = best_of(attempts[side])
        # Sizes before ours moves on alone; rows counted by a child, keeping this process small.
        ours_size = db_stats(ours_db, "stories")
        reader_size = db_stats(reader_db, "entries")

        # Ours alone: a full rebuild, then one category's feeds move on and are published.
        # A tenth of that category's feeds (those whose neighbours are in it too) suffices.
        inner = inner_feeds(block_categories(len(urls)), CATEGORIES[0])
        moved = [urls[i] for i in inner[: max(1, len(inner) // 10)]]
        moved_file = work / "moved.txt"
        moved_file.write_text("\n".join(moved), encoding="utf-8")
        server.set_round(2)
        warm(moved)
        clock.say(f"publish: full rebuild, then {len(moved)} '{CATEGORIES[0]}' feeds move on")
        before_publish = Snapshot(work / "before" / "publish", state["ours"])
        published: list[Run] = []
        for attempt in range(PUBLISH_ATTEMPTS):
            if attempt:
                before_publish.restore()
            run = observed(
                server, [PY, str(BENCH / "_ours.py"), "publish", str(config), str(moved_file)]
            )
            published.append(run)
            clock.say(
                f"publish: full {run.data['full_seconds']:.2f} s, incremental "
                f"{run.data['incremental_seconds']:.2f} s ({run.data['changed']} stories "
                f"changed in {', '.join(run.data['categories'])})"
            )
        publish = best_publish(published)

    big: Run | None = None
    if not options.skip_big:
        shape = f"{options.big_feeds} x {options.big_items}"
        with CorpusServer(
            work / "corpus-big", options.big_feeds, options.big_items, options.overlap
        ) as server:
            big_config = write_config(work / "ours-big", server.urls)
            run_child(ours_cli(big_config, "status", "--json")).check()
            clock.say(f"big: warming {shape}")
            warm(server.urls)
            big = observed(server, ours_cli(big_config, "update"))
            clock.say(
                f"big: ours {shape}: {big.child.seconds:.2f} s whole, {big.inner:.2f} s "
                f"in-process, {big.peak_mb:.0f} MB, responses {big.hits}"
            )

    rows = table_rows(options, runs, publish, big, ours_size, reader_size)
    table = markdown(rows)
    notes = notes_text(
        options, runs, publish, big, baseline, ours_size[1], reader_size[1], clock.elapsed()
    )
    print()
    print(table)
    print()
    print(notes)
    if options.out is not None:
        write_results(options, table, notes)
    if options.keep:
        clock.say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    clock.say(
        f"done; table written to {options.out}"
        if options.out is not None
        else "done; sizes other than make bench's: table not written (--out FILE writes it)"
    )
    return 0


def table_rows(
    options: argparse.Namespace,
    runs: dict[tuple[str, str], Run],
    publish: Run,
    big: Run | None,
    ours_db: tuple[int, int],
    reader_db: tuple[int, int],
) -> list[Row]:
    total = options.feeds * options.items
    shape = f"{options.feeds:,} × {options.items}"

    def pair(phase: str, inner: bool) -> tuple[float, float]:
        if inner:
            return runs[phase, "ours"].inner, runs[phase, "reader"].inner
        return runs[phase, "ours"].child.seconds, runs[phase, "reader"].child.seconds

    rows = [
        speed_row(f"1. cold ingest {shape}, in-process (entries/s)", *pair("cold", True), 5, total),
        speed_row(
            f"1. cold ingest {shape}, whole process (entries/s)", *pair("cold", False), 5, total
        ),
        speed_row("2. steady, one new entry per feed, in-process (s)", *pair("steady", True), 5),
        speed_row(
            "2. steady, one new entry per feed, whole process (s)", *pair("steady", False), 5
        ),
        speed_row("3. all-304 re-poll, in-process (s)", *pair("304", True), 5),
        speed_row("3. all-304 re-poll, whole process (s)", *pair("304", False), 3),
    ]
    full = publish.data["full_seconds"]
    incremental = publish.data["incremental_seconds"]
    rows += [
        Row(
            f"4. full publish of every output, {publish.data['stories']:,} stories (s)",
            f"{full:.2f}",
            "n/a",
            "",
            "≤ 2 s",
            full <= 2,
        ),
        Row(
            "4. incremental publish, one category changed (s)",
            f"{incremental:.2f}",
            "n/a",
            f"{incremental / full:.0%} of full",
            "≤ 10% of full",
            incremental <= 0.1 * full,
        ),
    ]
    ours_rss = max(runs[p, "ours"].peak_mb for p in PHASES)
    reader_rss = max(runs[p, "reader"].peak_mb for p in PHASES)
    rows.append(
        Row(
            f"5. peak RSS of update, {options.feeds:,} feeds (MB)",
            f"{ours_rss:.0f}",
            f"{reader_rss:.0f}",
            f"{ours_rss / reader_rss:.2f}× reader's",
            "≤ 2× reader's",
            ours_rss <= 2 * reader_rss,
        )
    )
    big_label = f"5. peak RSS of update, {options.big_feeds:,} × {options.big_items} (MB)"
    if big is None:
        rows.append(Row(big_label, "skipped", "n/a", "", f"≤ 2× ours at {options.feeds:,}", None))
    else:
        growth = big.peak_mb / ours_rss
        rows.append(
            Row(
                big_label.replace(f"{options.big_feeds:,} ×", f"{options.big_feeds:,} feeds ×"),
                f"{big.peak_mb:.0f}",
                "n/a",
                f"{growth:.2f}× ours at {options.feeds:,}",
                f"≤ 2× ours at {options.feeds:,} (far sublinear)",
                growth <= 2,
            )
        )
    ours_per = ours_db[0] / max(ours_db[1], 1)
    reader_per = reader_db[0] / max(reader_db[1], 1)
    rows.append(
        Row(
            "6. database bytes per stored entry",
            f"{ours_per:,.0f}",
            f"{reader_per:,.0f}",
            f"{ours_per / reader_per:.2f}× reader's",
            "≤ reader's",
            ours_per <= reader_per,
        )
    )
    return rows


def notes_text(
    options: argparse.Namespace,
    runs: dict[tuple[str, str], Run],
    publish: Run,
    big: Run | None,
    baseline: Child,
    stories: int,
    entries: int,
    elapsed: float,
) -> str:
    runs_table = [["phase", "side", "whole process (s)", "update in-process (s)"]]
    runs_table[0] += ["its publishing (s)", "peak RSS (MB)", "server responses"]
    named = [(phase, side, runs[phase, side]) for phase in PHASES for side in ("ours", "reader")]
    if big is not None:
        named.append((f"cold {options.big_feeds:,} × {options.big_items}", "ours", big))
    for phase, side, run in named:
        published = run.data.get("publish_seconds")
        runs_table.append(
            [
                phase,
                side,
                f"{run.child.seconds:.2f}",
                f"{run.inner:.2f}",
                "n/a" if published is None else f"{published:.2f}",
                f"{run.peak_mb:.0f}",
                ", ".join(f"{n:,} × {status}" for status, n in sorted(run.hits.items())),
            ]
        )
    lines = [markdown_table(runs_table)]
    expected = {"cold": "200", "steady": "200", "304": "304"}
    for phase, side, run in named[: 2 * len(PHASES)]:
        if run.hits != {expected[phase]: options.feeds}:
            lines.append(
                f"\nWARNING: {phase} {side} was answered {run.hits}, not all {expected[phase]}"
            )
    data = publish.data
    lines += [
        "",
        "- Each side ran each phase "
        + ", ".join(f"{phase} {n}" for phase, n in ATTEMPTS.items())
        + f" times, taking turns, and ours' publishing {PUBLISH_ATTEMPTS} times, every "
        "attempt from the same starting state (databases and published files put back); "
        "timings are the best attempt's, peak RSS the largest.",
        "- ours: the `aggregator --config feeds.yaml update` command run by bench/_ours.py in "
        "a process of its own; it also publishes what changed (a full build after the cold "
        "ingest, an incremental one after the steady re-poll, nothing after the all-304 "
        "one), which its whole-process time includes and its in-process update time does "
        "not. reader: bench/_reader.py, `update_feeds(scheduled=False, workers=4)`.",
        f"- Publish: full rebuild wrote {data['full_written']} files in "
        f"{data['full_seconds']:.2f} s; then {data['update_feeds']} feeds of one category moved "
        f"on ({data['changed']} stories changed, categories touched: "
        f"{', '.join(data['categories']) or 'none'}), and the incremental publish wrote "
        f"{data['incremental_written']} files ({data['incremental_unchanged']} unchanged) in "
        f"{data['incremental_seconds']:.2f} s.",
        f"- Stored: ours {stories:,} stories (cross-posts stored once), reader {entries:,} "
        "entries; database size includes -wal/-shm, measured after the all-304 re-poll.",
        "- Peak RSS of ours is its own plus that of the reading worker processes it starts "
        "for large documents, an upper bound of their sum (bench/_ours.py reports both; a "
        "worker's is its VmHWM sampled from /proc, because getrusage would give it the high-"
        "water mark it inherits from the process that starts it); reader's is its one process.",
        f"- Peak RSS floor: a bare `python -c pass` child peaks at "
        f"{baseline.peak_rss_mb:.0f} MB; this bench process peaked at "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB.",
    ]
    if big is not None:
        rate = options.big_feeds * options.big_items / big.inner
        lines.append(
            f"- Big run, ours only: a cold update of {options.big_feeds:,} feeds × "
            f"{options.big_items} entries, {rate:,.0f} entries/s in-process."
        )
    lines.append(f"- The whole benchmark took {elapsed:.0f} s.")
    return "\n".join(lines)


def write_results(options: argparse.Namespace, table: str, notes: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# Benchmark: aggregator against lemon24/reader",
        "",
        f"Written by bench/compare.py (`make bench`) on {now}.",
        "",
        f"- Machine: {os.cpu_count()} cores (`os.cpu_count()`), {platform.system()} "
        f"{platform.release()} {platform.machine()}",
        f"- Python {platform.python_version()}; reader {importlib.metadata.version('reader')}; "
        f"aggregator at {git_revision()}",
        f"- Corpus: ../shared/bench/feedcorpus.py, {options.feeds:,} feeds × "
        f"{options.items} entries = {options.feeds * options.items:,} entries, overlap "
        f"{options.overlap}, served on 127.0.0.1 and warmed before each timed phase; big run "
        + (
            "skipped"
            if options.skip_big
            else f"{options.big_feeds:,} feeds × {options.big_items} entries (ours only)"
        ),
        "- Ratios for timings: how many times faster ours is (reader's seconds ÷ ours, or "
        "ours' entries/s ÷ reader's); for sizes: ours ÷ reader's. \"Far sublinear\" RSS "
        "growth is taken as at most 2× for ten times the feeds.",
        "",
    ]
    options.out.write_text(
        "\n".join(header) + "\n" + table + "\n\n" + notes + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    sys.exit(main())
