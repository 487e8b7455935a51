"""Crash safety: `aggregator update` killed with SIGKILL at random moments.

A few hundred generated feeds (RSS and Atom, CJK titles, cross-posted links,
several categories) are served on 127.0.0.1. Every round a rotating share of
them gains new items, so every run has real work to store and publish. Each
trial starts `aggregator update` as a real process, kills it with SIGKILL after
a seeded random delay (some trials wait for publishing to start, so both the
ingest and the publishing phase are hit), then runs `update` to completion and
checks:

* the database passes `PRAGMA integrity_check`;
* nothing is stored twice (stories by uid, link_key and link; entry sources by
  feed and entry id);
* nothing that a completed run had stored is lost, and a completed run has
  stored exactly the entries served so far;
* every published file is complete and well-formed, and a full rebuild from
  the database changes none of them (no output is left stale by the kill);
* a reader thread polling the published tree during the killed run and the
  completing run never sees a malformed file or a published name vanish.

The seed is printed with the report; set CRASH_SAFETY_SEED to replay a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from aggregator.core import make_aggregator
from tests.conftest import report, write_config_file
from tests.feedbuilder import Item, atom, rss
from tests.httpserver import Handler, Reply, Request, Route, Server, serve

SEED = int(os.environ.get("CRASH_SAFETY_SEED", "20240917"))
TRIALS = 20
FEEDS = 250
WINDOW = 20  # items per feed document
CHANGE_EVERY = 7  # a feed gains items every 7th round: a rotating seventh of them each round
NEW_PER_CHANGE = 2  # items a feed gains when it changes (the oldest drop out of its document)
CROSS_POST_EVERY = 4  # every 4th item of a feed pair shares its link with the other feed
MAX_ENTRIES = 100
CATEGORIES = ("Tech", "Science", "World", "新媒体", "Culture", "Business", "开发者", "Sports")
BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)
TIMEZONE = "Asia/Shanghai"
RSS_HEADERS = {"Content-Type": "application/rss+xml; charset=utf-8"}
ATOM_HEADERS = {"Content-Type": "application/atom+xml; charset=utf-8"}
ATOM_FEED = "{http://www.w3.org/2005/Atom}feed"
RUN_TIMEOUT = 120.0
KEEP = 50  # observations of each kind kept for the failure message
#: The checkout these tests belong to: the child processes run its code, as this process does.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the feeds


def feed_path(index: int) -> str:
    return f"/feeds/{index}"


def item_link(index: int, n: int) -> str:
    """Every CROSS_POST_EVERY-th item of feeds 2k and 2k+1 is one story under one link."""
    if n % CROSS_POST_EVERY == 0:
        return f"https://shared.example/{index // 2}/{n}"
    return f"https://site{index}.example/posts/{n}"


def item_guid(index: int, n: int) -> str:
    return f"tag:feeds.example,2024:{index}/{n}"


def item_title(index: int, n: int) -> str:
    if index % 3 == 0:
        return f"第{n}号快讯：数据库崩溃测试（源 {index}）"
    return f"Feed {index} story {n}"


def changes(index: int, round_: int) -> int:
    """How many of rounds 1..round_ changed the feed: those congruent to it mod CHANGE_EVERY."""
    first = index % CHANGE_EVERY or CHANGE_EVERY
    return (round_ - first) // CHANGE_EVERY + 1 if round_ >= first else 0


def window(index: int, round_: int) -> range:
    """The item numbers the feed's document holds in a round."""
    first = changes(index, round_) * NEW_PER_CHANGE
    return range(first, first + WINDOW)


def feed_document(index: int, round_: int) -> bytes:
    items = []
    for n in reversed(window(index, round_)):
        moment = BASE_DATE + timedelta(hours=n, minutes=index % 60)
        is_rss = index % 2 == 0
        items.append(
            Item(
                title=item_title(index, n),
                link=item_link(index, n),
                guid=item_guid(index, n),
                date=format_datetime(moment, usegmt=True) if is_rss else moment.isoformat(),
                description=f"<p>Story <b>{n}</b> of feed {index}.</p><p>{'正文 ' * 20}</p>",
                author=f"Author {index % 7}",
            )
        )
    title = f"源 {index} 新闻" if index % 3 == 0 else f"Feed {index}"
    link = f"https://site{index}.example/"
    if index % 2 == 0:
        return rss(title, items, link=link)
    return atom(title, items, link=link)


def feed_categories(index: int) -> list[str]:
    first = CATEGORIES[index % len(CATEGORIES)]
    second = CATEGORIES[(index * 3 + 1) % len(CATEGORIES)]
    return [first, second] if index % 3 == 0 and second != first else [first]


class FeedSite:
    """The routes of every feed; documents depend on the current round."""

    def __init__(self) -> None:
        self.round = 0
        self._cache: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()

    def routes(self) -> dict[str, Route]:
        return {feed_path(i): self._handler(i) for i in range(FEEDS)}

    def _handler(self, index: int) -> Handler:
        headers = RSS_HEADERS if index % 2 == 0 else ATOM_HEADERS

        def handle(_: Request) -> Reply:
            key = (index, self.round)
            with self._lock:
                body = self._cache.get(key)
                if body is None:
                    body = self._cache[key] = feed_document(*key)
            return Reply(body=body, headers=headers)

        return handle

    def served(self) -> Iterator[tuple[int, int]]:
        """(feed, item) of every item served so far: each document slides, leaving no gap."""
        for i in range(FEEDS):
            for n in range(window(i, self.round).stop):
                yield i, n

    def expected_entries(self, urls: list[str]) -> set[tuple[str, str]]:
        return {(urls[i], item_guid(i, n)) for i, n in self.served()}

    def expected_story_count(self) -> int:
        return len({item_link(i, n) for i, n in self.served()})


def quiet_resets(server: Server) -> None:
    """Killed clients reset their connections: expected here, so not worth a traceback."""
    httpd = server._httpd
    report = httpd.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            report(request, client_address)

    httpd.handle_error = handle_error  # type: ignore[method-assign]


# --------------------------------------------------------------------------- published files


def is_temp_name(name: str) -> bool:
    """What `files.write_if_changed` names its temporary files: `.<name>.<random>.tmp`."""
    return name.startswith(".") and name.endswith(".tmp")


def malformed(name: str, data: bytes) -> str | None:
    """Why the bytes of one read of a published file are not a complete document, or None."""
    if not data:
        return "empty file"
    if b"\x00" in data:
        return "NUL bytes in file"
    suffix = Path(name).suffix
    try:
        if suffix in (".atom", ".rss", ".opml"):
            parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
            root = etree.fromstring(data, parser)
            wanted = {".atom": ATOM_FEED, ".rss": "rss", ".opml": "opml"}[suffix]
            if root.tag != wanted:
                return f"root element {root.tag!r}, expected {wanted!r}"
            return None
        if suffix == ".json":
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict) or not isinstance(document.get("items"), list):
                return "JSON Feed without an items list"
            return None
        if suffix == ".html":
            text = data.decode("utf-8").strip()
            if not text.lower().startswith("<!doctype html>"):
                return "HTML does not start with <!doctype html>"
            if not text.endswith("</html>"):
                return f"HTML does not end with </html> (ends {text[-40:]!r})"
            return None
    except (etree.XMLSyntaxError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
        return f"{type(e).__name__}: {e}"
    return f"unexpected file type {suffix!r}"


def check_the_checker(public: Path) -> None:
    """Every published file passes, and a torn copy of it (its first half) does not."""
    for relative, path in walk(public):
        data = path.read_bytes()
        assert malformed(path.name, data) is None, relative
        assert malformed(path.name, data[: len(data) // 2]) is not None, relative


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to root, path) of every file under root."""
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            yield str(path.relative_to(root)), path


@dataclass(frozen=True)
class Observation:
    path: str
    reason: str
    when: str


class Reader(threading.Thread):
    """Reads every published file again and again and judges each read on its own bytes."""

    def __init__(self, root: Path) -> None:
        super().__init__(name="published-files-reader", daemon=True)
        self.root = root
        self.phase = "setup"
        self.reads = 0
        self.sweeps = 0
        self.temp_names_seen: set[str] = set()
        self.malformed: list[Observation] = []  # the first KEEP of each kind
        self.vanished: list[Observation] = []
        self.malformed_count = 0
        self.vanished_count = 0
        self.errors: list[str] = []
        self._last: dict[str, tuple[bytes, str | None]] = {}  # bytes last read, verdict
        self._versions: set[tuple[str, bytes]] = set()  # (file, digest) of every version read
        self._stop_event = threading.Event()
        self._reading = threading.Event()  # cleared while the test itself checks the tree

    @property
    def versions_seen(self) -> int:
        """Distinct (file, content) pairs read: how many replacements the reader witnessed."""
        return len(self._versions)

    @property
    def files_seen(self) -> int:
        return len({name for name, _digest in self._versions})

    def read_during(self, phase: str) -> None:
        self.phase = phase
        self._reading.set()

    def pause(self, phase: str) -> None:
        """Stop reading (after the current sweep), so as not to slow down the checks."""
        self.phase = phase
        self._reading.clear()

    def stop(self) -> None:
        self._stop_event.set()
        self._reading.set()
        self.join(timeout=30)

    def run(self) -> None:
        known: set[str] = set()
        while not self._stop_event.is_set():
            self._reading.wait()
            try:
                known = self._sweep(known)
            except Exception as e:  # the reader must report, not die silently
                self.errors.append(f"{type(e).__name__}: {e}")
            time.sleep(0.002)

    def _sweep(self, known: set[str]) -> set[str]:
        listed: set[str] = set()
        for relative, path in walk(self.root):
            if is_temp_name(path.name):
                self.temp_names_seen.add(relative)
                continue
            listed.add(relative)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                self._vanished(relative, "gone between listing and reading")
                continue
            self.reads += 1
            # The verdict depends on the bytes read alone: the same bytes as last time of
            # this file need no second parse.
            last = self._last.get(relative)
            if last is None or last[0] != data:
                last = self._last[relative] = (data, malformed(path.name, data))
                self._versions.add((relative, hashlib.sha256(data).digest()))
            if last[1] is not None:
                self.malformed_count += 1
                if len(self.malformed) < KEEP:
                    self.malformed.append(Observation(relative, last[1], self.phase))
        for relative in known - listed:
            self._vanished(relative, "missing from a later listing")
        self.sweeps += 1
        return known | listed

    def _vanished(self, relative: str, how: str) -> None:
        self.vanished_count += 1
        if len(self.vanished) < KEEP:
            self.vanished.append(Observation(relative, how, self.phase))


# --------------------------------------------------------------------------- the database


@dataclass(frozen=True)
class DatabaseState:
    integrity: list[str]
    duplicates: dict[str, list[tuple[Any, ...]]]
    uids: set[str]
    entries: set[tuple[str, str]]  # (feed url, entry id)
    orphans: int
    polls: int


def database_state(db: Path) -> DatabaseState:
    """What the checks need from the database, read with plain sqlite3."""
    queries = {
        "stories.uid": "SELECT uid, count(*) FROM stories GROUP BY uid HAVING count(*) > 1",
        "stories.link_key": "SELECT link_key, count(*) FROM stories WHERE link_key IS NOT NULL"
        " GROUP BY link_key HAVING count(*) > 1",
        "stories.link": "SELECT link, count(*) FROM stories WHERE link IS NOT NULL"
        " GROUP BY link HAVING count(*) > 1",
        "entry_sources": "SELECT feed_id, entry_id, count(*) FROM entry_sources"
        " GROUP BY feed_id, entry_id HAVING count(*) > 1",
    }
    connection = sqlite3.connect(db, timeout=30)
    try:
        run = connection.execute
        state = DatabaseState(
            integrity=[row[0] for row in run("PRAGMA integrity_check")],
            duplicates={k: rows for k, q in queries.items() if (rows := run(q).fetchall())},
            uids={row[0] for row in run("SELECT uid FROM stories")},
            entries=set(
                run(
                    "SELECT feeds.url, entry_sources.entry_id FROM entry_sources"
                    " JOIN feeds ON feeds.id = entry_sources.feed_id"
                ).fetchall()
            ),
            orphans=run(
                "SELECT count(*) FROM stories WHERE id NOT IN (SELECT story_id FROM entry_sources)"
            ).fetchone()[0],
            polls=run("SELECT count(*) FROM polls").fetchone()[0],
        )
    finally:
        connection.close()
    return state


def database_problems(state: DatabaseState, stored: DatabaseState) -> list[str]:
    """Integrity, duplicates, and loss against what the last completed run had stored."""
    problems = []
    if state.integrity != ["ok"]:
        problems.append(f"integrity_check: {state.integrity[:10]}")
    for what, rows in state.duplicates.items():
        problems.append(f"duplicated {what}: {rows[:5]} ({len(rows)} in all)")
    if lost_uids := stored.uids - state.uids:
        problems.append(f"lost {len(lost_uids)} stored stories: {sorted(lost_uids)[:5]}")
    if lost_entries := stored.entries - state.entries:
        problems.append(f"lost {len(lost_entries)} stored entries: {sorted(lost_entries)[:5]}")
    if state.orphans:
        problems.append(f"{state.orphans} stories without an entry source")
    return problems


# --------------------------------------------------------------------------- processes


@contextmanager
def update_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m aggregator --config CONFIG update` as a process of its own.

    Whatever happens in the block, the process is gone when it ends.
    """
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), "update"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=config.parent,
            env={**os.environ, "PYTHONPATH": path},
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def snapshot(public: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, size, mtime) of every file, temporary ones included."""
    found = {}
    for relative, path in walk(public):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found[relative] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return found


def wait_for_publishing(process: subprocess.Popen[bytes], public: Path) -> None:
    """Return once the process touches the published tree (or has exited)."""
    before = snapshot(public)
    while process.poll() is None and snapshot(public) == before:
        time.sleep(0.005)


def published_problems(public: Path) -> tuple[list[str], int]:
    """Malformed published files, and how many temporary files lie around."""
    problems = []
    temp = 0
    for relative, path in walk(public):
        if is_temp_name(path.name):
            temp += 1
        elif (reason := malformed(path.name, path.read_bytes())) is not None:
            problems.append(f"{relative}: {reason}")
    return problems, temp


def local_day() -> date:
    """The site's today: which digest page is index.html."""
    return datetime.now(ZoneInfo(TIMEZONE)).date()


def stale_outputs(config: Path, scratch: Path) -> list[str]:
    """Published files that a full rebuild from the database would change.

    The rebuild runs on a copy (config, database, published tree), so the
    checked tree is left as the completing run left it.
    """
    shutil.rmtree(scratch, ignore_errors=True)
    (scratch / "var").mkdir(parents=True)
    shutil.copy(config, scratch / config.name)
    shutil.copytree(config.parent / "var" / "public", scratch / "var" / "public")
    source = sqlite3.connect(config.parent / "var" / "aggregator.db")
    target = sqlite3.connect(scratch / "var" / "aggregator.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    aggregator = make_aggregator(scratch / config.name)
    try:
        report = aggregator.publish(None)
    finally:
        aggregator.close()
    return sorted(str(path.relative_to(scratch / "var" / "public")) for path in report.written)


# --------------------------------------------------------------------------- trials


@dataclass
class Trial:
    number: int
    round: int
    aimed_at: str  # "whole run": a delay in [0, 1.05 x full run]; "publishing": once it starts
    delay: float = 0.0  # from the start of the process to the kill
    outcome: str = ""  # "killed" or "finished before kill"
    feeds_stored: int = 0  # polls the killed run recorded
    files_written: int = 0  # published files (and temporary ones) it created or replaced
    temp_left: int = 0  # temporary files the kill left behind
    stale: int = 0
    completing_seconds: float = 0.0
    check_seconds: float = 0.0
    reads: int = 0  # reads of published files by the reader during both runs
    problems: list[str] = field(default_factory=list)


@dataclass
class Harness:
    site: FeedSite
    config: Path
    urls: list[str]
    reader: Reader
    logs: Path
    scratch: Path
    full_seconds: float = 0.0  # an uninterrupted run that stores a round's changes
    publish_start: float = 0.0  # when that run first touched the published tree

    @property
    def public(self) -> Path:
        return self.config.parent / "var" / "public"

    @property
    def db(self) -> Path:
        return self.config.parent / "var" / "aggregator.db"

    def complete(self, log_name: str, *, timed: bool = False) -> tuple[int, float, str]:
        """Run `update` to its end: exit code, seconds, output."""
        started = time.monotonic()
        log = self.logs / log_name
        with update_process(self.config, log) as process:
            if timed:
                wait_for_publishing(process, self.public)
                self.publish_start = time.monotonic() - started
            code = process.wait(timeout=RUN_TIMEOUT)
        return code, time.monotonic() - started, log.read_text(errors="replace")

    def completed_run_problems(self, stored: DatabaseState) -> tuple[DatabaseState, list[str]]:
        """Checks after a completed run: the database, then the published tree."""
        state = database_state(self.db)
        problems = database_problems(state, stored)
        expected = self.site.expected_entries(self.urls)
        if missing := expected - state.entries:
            problems.append(f"lost {len(missing)} served entries: {sorted(missing)[:5]}")
        if unexpected := state.entries - expected:
            problems.append(f"{len(unexpected)} entries never served: {sorted(unexpected)[:5]}")
        if len(state.uids) != self.site.expected_story_count():
            problems.append(f"{len(state.uids)} stories, {self.site.expected_story_count()} links")
        malformed_files, _temp = published_problems(self.public)
        problems += [f"malformed published file {p}" for p in malformed_files]
        return state, problems

    def trial(self, trial: Trial, fraction: float, stored: DatabaseState) -> DatabaseState:
        """Kill one update, complete the next; returns what the completed run stored."""
        reads_before = self.reader.reads
        polls_before = database_state(self.db).polls
        before = snapshot(self.public)

        self.reader.read_during(f"trial {trial.number}: run to be killed")
        started = time.monotonic()
        with update_process(self.config, self.logs / f"trial-{trial.number}-killed.log") as process:
            if trial.aimed_at == "publishing":
                wait_for_publishing(process, self.public)
                time.sleep(fraction * (self.full_seconds - self.publish_start))
            else:
                time.sleep(fraction * self.full_seconds * 1.05)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)  # an exited, unreaped child ignores it
            trial.delay = time.monotonic() - started
            code = process.wait(timeout=RUN_TIMEOUT)
        trial.outcome = "killed" if code == -signal.SIGKILL else "finished before kill"
        if code not in (0, -signal.SIGKILL):
            trial.problems.append(f"the run to be killed exited {code} on its own")

        after = snapshot(self.public)
        trial.files_written = sum(1 for k, v in after.items() if before.get(k) != v)
        trial.temp_left = sum(1 for k in after if is_temp_name(Path(k).name) and k not in before)
        killed_state = database_state(self.db)
        trial.feeds_stored = killed_state.polls - polls_before
        trial.problems += [f"after the kill: {p}" for p in database_problems(killed_state, stored)]

        self.reader.read_during(f"trial {trial.number}: completing run")
        day = local_day()
        code, trial.completing_seconds, log = self.complete(f"trial-{trial.number}-complete.log")
        trial.reads = self.reader.reads - reads_before
        self.reader.pause(f"trial {trial.number}: checks")
        checks_started = time.monotonic()
        if code != 0:
            trial.problems.append(f"the completing update exited {code}: {log[-2000:]}")
        state, problems = self.completed_run_problems(stored)
        trial.problems += problems
        stale = stale_outputs(self.config, self.scratch)
        if local_day() != day:  # today's page moved on between the run and the rebuild
            stale = []
        trial.stale = len(stale)
        if stale:
            trial.problems.append(f"stale after the completing run (a rebuild changes): {stale}")
        trial.check_seconds = time.monotonic() - checks_started
        return state


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_duplicates_and_tears_nothing(tmp_path: Path) -> None:
    began = time.monotonic()
    rng = random.Random(SEED)
    print(f"\ncrash safety: seed {SEED} (set CRASH_SAFETY_SEED to replay)")
    site = FeedSite()
    (tmp_path / "logs").mkdir()
    (tmp_path / "site").mkdir()
    with serve(site.routes()) as server:
        quiet_resets(server)
        urls = [server.url(feed_path(i)) for i in range(FEEDS)]
        feeds = [
            {"url": urls[i], "name": f"Source {i}", "categories": feed_categories(i)}
            for i in range(FEEDS)
        ]
        config = write_config_file(
            tmp_path / "site", feeds, max_entries=MAX_ENTRIES, timezone=TIMEZONE
        )
        reader = Reader(config.parent / "var" / "public")
        harness = Harness(site, config, urls, reader, tmp_path / "logs", tmp_path / "rebuild")

        # Round 0 fills the database; round 1, timed with the reader at work, places the kills.
        code, first_seconds, log = harness.complete("round-0.log")
        assert code == 0, log
        reader.start()
        trials: list[Trial] = []
        try:
            site.round = 1
            reader.read_during("timed round 1")
            day = local_day()
            code, harness.full_seconds, log = harness.complete("round-1.log", timed=True)
            reader.pause("checks after round 1")
            assert code == 0, log
            assert harness.publish_start < harness.full_seconds, "the timed run published nothing"
            stored, problems = harness.completed_run_problems(database_state(harness.db))
            assert problems == [], problems
            stale = stale_outputs(config, harness.scratch)
            assert stale == [] or local_day() != day, f"stale outputs with no kill: {stale}"
            check_the_checker(harness.public)

            for number in range(1, TRIALS + 1):
                site.round += 1
                aimed_at = "publishing" if number % 3 == 0 else "whole run"
                trial = Trial(number, site.round, aimed_at)
                trials.append(trial)
                stored = harness.trial(trial, rng.random(), stored)
        finally:
            reader.stop()

    _problems, temp_left = published_problems(harness.public)
    report(
        "crash safety (kill -9)",
        crash_report(trials, harness, first_seconds, temp_left, time.monotonic() - began),
    )
    assert not reader.errors, reader.errors
    assert reader.malformed_count == 0, reader.malformed
    assert reader.vanished_count == 0, reader.vanished
    problems = [f"trial {t.number}: {p}" for t in trials for p in t.problems]
    assert not problems, "\n".join(problems)
    assert sum(1 for t in trials if t.outcome == "killed") >= TRIALS // 2


def crash_report(
    trials: list[Trial], harness: Harness, first_seconds: float, temp_left: int, total: float
) -> str:
    reader = harness.reader
    killed = [t for t in trials if t.outcome == "killed"]
    publishing = [t for t in killed if t.files_written]
    problems = [p for t in trials for p in t.problems]
    delays = sorted(t.delay for t in trials)
    lines = [
        "",
        "==== crash safety report ====",
        f"seed {SEED}; {len(trials)} trials; {FEEDS} feeds of {WINDOW} items in "
        f"{len(CATEGORIES)} categories; each round {FEEDS // CHANGE_EVERY} feeds gain "
        f"{NEW_PER_CHANGE} items",
        f"first run {first_seconds:.2f}s; timed full run {harness.full_seconds:.2f}s, "
        f"publishing from {harness.publish_start:.2f}s",
        f"killed mid-run: {len(killed)} ({len(killed) - len(publishing)} before publishing, "
        f"{len(publishing)} after publishing began); finished before kill: "
        f"{len(trials) - len(killed)}",
        "trial round aimed-at   delay outcome              feeds-stored files-written "
        "temp-left complete-s check-s  reads stale problems",
    ]
    for t in trials:
        lines.append(
            f"{t.number:5} {t.round:5} {t.aimed_at:10} {t.delay:5.2f} {t.outcome:20} "
            f"{t.feeds_stored:12} {t.files_written:13} {t.temp_left:9} "
            f"{t.completing_seconds:10.2f} {t.check_seconds:7.2f} {t.reads:6} {t.stale:5} "
            f"{len(t.problems):8}"
        )
    lines += [
        f"kill delays (s): {' '.join(f'{d:.2f}' for d in delays)}",
        f"reader: {reader.reads} reads in {reader.sweeps} sweeps of {reader.files_seen} files, "
        f"{reader.versions_seen} distinct versions; malformed seen: {reader.malformed_count}; "
        f"published names vanished: {reader.vanished_count}; reader errors: {len(reader.errors)}",
        f"temporary files: {len(reader.temp_names_seen)} seen by the reader, "
        f"{sum(t.temp_left for t in trials)} left by kills, {temp_left} in the tree at the end",
        f"lost: {sum(1 for p in problems if 'lost' in p)}, "
        f"duplicated: {sum(1 for p in problems if 'duplicated' in p)}, "
        f"stale outputs: {sum(1 for t in trials if t.stale)} trials, "
        f"trials with problems: {sum(1 for t in trials if t.problems)}",
        f"total {total:.1f}s",
    ]
    return "\n".join(lines)
