"""Where the stages meet: fetch → parse → clean → decide → store → publish.

    for result in fetch_iter(due feeds):           # concurrent, bounded
        error / 304 / same bytes as last time   → record the poll, next
        parse_document → normalise_entry         # bytes → plain records
        load_context → decide_feed → apply       # one transaction per feed
    publish_feeds + publish_opml + render_digest  # only outputs that changed
    PostFolder.write for changed stories          # when site.posts_dir is set

`make_aggregator` wires the parts; the CLI and the scheduler only call it.
A failing feed becomes that feed's recorded result and the run goes on.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aggregator import USER_AGENT, __version__, identity
from aggregator.config_cache import load_config
from aggregator.decide import (
    decide_feed,
    identifying_links,
    newest_entries,
    next_poll,
    unique_entries,
)
from aggregator.errors import ParseError, PublishError, cause_of
from aggregator.files import remove_stale_temporaries
from aggregator.identity import body_hash, entry_hash
from aggregator.memory import release_free_memory
from aggregator.models import (
    Category,
    Config,
    DigestDay,
    FeedHealth,
    FeedSource,
    FeedState,
    FetchResult,
    NextPoll,
    PollOutcome,
    PollRecord,
    StoryView,
    WriteReport,
)
from aggregator.pool import Document, Job, Prepared, WorkerPool
from aggregator.storage import UNPUBLISHED_KEY, Storage, open_storage

if TYPE_CHECKING:
    from aggregator.posts import PostOptions

log = logging.getLogger(__name__)

ALL = Category(name="all", slug="all")
#: storage meta key: the fingerprint of the config the outputs were last fully built from.
OUTPUTS_KEY = "outputs_fingerprint"
#: storage meta key: the slugs whose output feeds the last full build wrote (a JSON list).
FEED_SLUGS_KEY = "published_feed_slugs"
#: storage meta key: the `identity.READING_REVISION` the stored validators were polled under.
READING_REVISION_KEY = "reading_revision"
#: Stories read from the database at a time when exporting posts.
EXPORT_BATCH = 200
#: Polls that stored nothing (304s, errors) are written this many to a transaction.
QUIET_POLLS_PER_TRANSACTION = 500
#: Feeds stored in one transaction at most, and the longest it stays open (see _StoreBatch).
FEEDS_PER_TRANSACTION = 25
TRANSACTION_SECONDS = 0.5
#: Feeds whose documents may be in reading, or read and waiting: bounds their memory.
MAX_READING = 8
#: Stories on a page of a category's stories of a day (pages are counted from the oldest).
DIGEST_PAGE_SIZE = 200
#: Feed states read on opening are used by an update starting within this long.
STATES_FRESH_SECONDS = 5.0


@dataclass(frozen=True)
class FeedResult:
    """What one feed's poll came to, as the CLI reports it."""

    url: str
    name: str
    outcome: PollOutcome

    @property
    def ok(self) -> bool:
        return self.outcome.error is None


@dataclass
class UpdateReport:
    results: list[FeedResult] = field(default_factory=list)
    changed_story_ids: set[int] = field(default_factory=set)
    published: WriteReport = field(default_factory=WriteReport)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (feed, why)
    #: Ended early by `stop`: the feeds not reported were not polled, and nothing was published.
    stopped: bool = False
    #: Why publishing failed, when it did: what the poll stored waits for the next publish.
    publish_error: PublishError | None = None

    @property
    def failed(self) -> list[FeedResult]:
        return [r for r in self.results if not r.ok]


@dataclass(frozen=True)
class _Reading:
    """A feed between reading its document and storing its cleaned entries."""

    source: FeedSource
    state: FeedState
    result: FetchResult
    base: PollOutcome
    digest: str
    job: Job[Prepared]


class _StoreBatch:
    """Feeds stored in one transaction, reported once it commits.

    One commit per feed was a tenth of a first poll. A feed that fails to
    store rolls the batch back, and its feeds are then stored one at a time,
    so the failure is recorded against that feed alone, as without batches.
    """

    def __init__(
        self, aggregator: Aggregator, finished: Callable[[FeedResult, set[int]], None]
    ) -> None:
        self._aggregator = aggregator
        self._finished = finished
        self._stored: list[tuple[_Reading, FeedResult, set[int]]] = []
        self._opened_at = 0.0

    def store(self, reading: _Reading) -> None:
        aggregator, storage = self._aggregator, self._aggregator.storage
        if not storage.batch_open:
            storage.begin_batch()
            self._opened_at = time.monotonic()
        try:
            outcome, touched, title = aggregator._store(reading)
        except BaseException as e:
            storage.rollback_batch()
            if not isinstance(e, Exception) or cause_of(e, KeyboardInterrupt) is not None:
                # Ctrl-C (perhaps wrapped: see _raise_interrupt_within) broke off a
                # feed halfway; the commit on the way out would have kept part of
                # its writes. The batch's feeds were not reported: polled next time.
                self._stored = []
                _raise_interrupt_within(e)
                raise
            redo, self._stored = [*(stored[0] for stored in self._stored), reading], []
            for member in redo:
                self._finished(*aggregator._finish(member))
            return
        name = aggregator._name(reading.source, reading.state, title)
        # Kept only to be stored again on its own should the batch roll back
        # (rare): its cleaned entries are read again then, not held till the
        # commit; held, they raised a first poll's peak of Python memory 6 to 12 MB.
        kept = dataclasses.replace(reading, job=reading.job.forget())
        self._stored.append((kept, FeedResult(reading.source.url, name, outcome), touched))
        if len(self._stored) >= FEEDS_PER_TRANSACTION:
            self.commit()

    def commit_if_old(self) -> None:
        """Commit a batch open for long: other writers wait while it is, and readers lag."""
        if self._stored and time.monotonic() - self._opened_at > TRANSACTION_SECONDS:
            self.commit()

    def commit(self) -> None:
        storage = self._aggregator.storage
        stored, self._stored = self._stored, []
        if storage.batch_open:
            try:
                storage.commit_batch()  # also writes the batch's polls (see Storage.apply)
            except Exception:
                # Nothing of the batch was kept: its feeds are stored again one at a
                # time, so whatever failed is recorded against its own feed alone.
                for reading, _result, _touched in stored:
                    self._finished(*self._aggregator._finish(reading))
                return
        for _reading, feed_result, touched in stored:
            self._finished(feed_result, touched)
        if stored:
            release_free_memory()


@dataclass(frozen=True)
class StatusReport:
    entries_total: int
    feeds: tuple[FeedHealth, ...]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Aggregator:
    """One configured aggregator: its config, its database, and the pipeline over them."""

    def __init__(
        self, config: Config, storage: Storage, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.config = config
        self.storage = storage
        self.clock = clock
        self.zone = ZoneInfo(config.site.timezone)
        self._sources = {source.url: source for source in config.feeds}
        # Once per database after a change to how documents are read: a server
        # answering 304 would never send its document again to be read anew.
        storage.forget_validators_once(READING_REVISION_KEY, str(identity.READING_REVISION))
        self._states = storage.sync_feeds(config.feeds, clock())
        # The states just read serve an update that follows at once (the
        # `update` command's); any later one (the scheduler's) reads them anew.
        self._states_read_at: float | None = time.monotonic()
        self._fingerprint = outputs_fingerprint(config)
        self._quiet_polls: list[PollRecord] = []
        #: Worker processes reading documents (None: one per spare core).
        self.workers: int | None = None
        self.page_size = DIGEST_PAGE_SIZE

    def close(self) -> None:
        self.storage.close()

    def reconfigured(self, config: Config) -> Aggregator:
        """This aggregator under an edited config (`run` follows feeds.yaml; see follow.py).

        The database stays open unless the edit moved it; if it did, this
        aggregator's database is closed once the new one has opened.
        """
        moved = config.site.database_url != self.config.site.database_url
        storage = open_storage(config.site.database_url) if moved else self.storage
        try:
            aggregator = Aggregator(config, storage, self.clock)
        except BaseException:
            if moved:
                storage.close()
            raise
        if moved:
            self.close()
        aggregator.workers, aggregator.page_size = self.workers, self.page_size
        return aggregator

    # ---- polling --------------------------------------------------------------

    def due_sources(self) -> list[FeedSource]:
        return [self._sources[url] for url in self.storage.due_feeds(self.clock())]

    def update(
        self,
        sources: Sequence[FeedSource] | None = None,
        *,
        on_result: Callable[[FeedResult], None] | None = None,
        publish: bool = True,
        force: bool = False,
        stop: threading.Event | None = None,
    ) -> UpdateReport:
        """Poll the given feeds (default: all), store what is new, then publish.

        Feeds a server has asked us to leave alone (410 Gone, or Retry-After
        still running) are skipped and listed in the report, unless `force`.
        `stop`, set from another thread, ends the poll at its next feed: what
        it stored is committed, and publishing it is left to the next update
        (the database remembers that it is unpublished).
        """
        sources = list(self.config.feeds if sources is None else sources)
        read_at, self._states_read_at = self._states_read_at, None
        if read_at is None or time.monotonic() - read_at > STATES_FRESH_SECONDS:
            self._states = self.storage.feed_states()
        problems_before = self._problems()
        # Stories stored by a run that died before publishing them.
        unpublished = self.storage.get_meta(UNPUBLISHED_KEY) == "1"
        report = UpdateReport()
        now = self.clock()
        by_fetch_url: dict[str, FeedSource] = {}
        for source in sources:
            state = self._states[source.url]
            reason = None if force else self._held_back(state, now)
            if reason is not None:
                report.skipped.append((source.name or state.title or source.url, reason))
            else:
                by_fetch_url[state.fetch_url] = source
        self._quiet_polls = []
        pool = WorkerPool(self.workers)
        try:
            with _old_objects_frozen():
                self._poll(by_fetch_url, pool, report, on_result, stop)
            if stop is not None and stop.is_set():
                report.stopped = True
                return report
            self.storage.prune_polls(self.clock())
            try:
                if publish and unpublished:
                    report.published = self.publish(None, pool=pool)
                elif publish and (
                    report.changed_story_ids
                    or self._problems() != problems_before
                    or not self._today_page().exists()
                    or self._outputs_outdated()
                ):
                    report.published = self.publish(report.changed_story_ids, pool=pool)
            except PublishError as e:  # the poll's report still says what it stored
                report.publish_error = e
        finally:
            pool.close()
        return report

    def _poll(
        self,
        by_fetch_url: dict[str, FeedSource],
        pool: WorkerPool,
        report: UpdateReport,
        on_result: Callable[[FeedResult], None] | None,
        stop: threading.Event | None,
    ) -> None:
        """Fetch, read and store each feed; what was stored stays stored, even on Ctrl-C."""
        # Here, not at the top: aiohttp is a fifth of start-up, and `status`
        # or `build` never fetch.
        from aggregator.fetch import fetch_iter

        requests = [(url, self._states[s.url].validators) for url, s in by_fetch_url.items()]
        # Feeds whose documents are being read, stored in the order they came.
        reading: deque[_Reading] = deque()

        def finished(feed_result: FeedResult, touched: set[int]) -> None:
            report.results.append(feed_result)
            report.changed_story_ids |= touched
            if len(self._quiet_polls) >= QUIET_POLLS_PER_TRANSACTION:
                self._record_quiet_polls()
            if on_result is not None:
                on_result(feed_result)

        batch = _StoreBatch(self, finished)
        try:
            for result in fetch_iter(requests, self.config.site.fetch, USER_AGENT, stop):
                started = self._begin(by_fetch_url[result.url], result, pool)
                if isinstance(started, _Reading):
                    reading.append(started)
                else:
                    finished(*started)
                while reading and (reading[0].job.done() or len(reading) > MAX_READING):
                    batch.store(reading.popleft())
                batch.commit_if_old()
            while reading:
                batch.store(reading.popleft())
        finally:
            batch.commit()  # what was stored stays stored, even on Ctrl-C
            self._record_quiet_polls()

    def _record_quiet_polls(self) -> None:
        """Write the buffered polls that stored nothing; losing them to a kill costs a re-poll."""
        if self.storage.batch_open:  # not into a batch that may yet be rolled back
            return
        polls, self._quiet_polls = self._quiet_polls, []
        self.storage.record_polls(polls)

    def _held_back(self, state: FeedState, now: datetime) -> str | None:
        """Why a server's own request keeps this feed from being polled now, if it does."""
        if state.state == "gone":
            return "gone (HTTP 410); remove it from feeds.yaml, or --force to poll it anyway"
        if state.not_before is not None and state.not_before > now:
            until = state.not_before.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %Z")
            return f"the server asked us to wait until {until} (Retry-After); --force overrides"
        return None

    def _problems(self) -> list[tuple[str, str, str | None]]:
        """What the digest says about failing sources; a change means republishing."""
        failing = self.storage.health(failing_only=True)
        return [(h.url, h.state, h.last_error) for h in failing]

    def _today_page(self) -> Path:
        today = self._local_day(self.clock()).isoformat()
        return self.config.site.output_dir / "digest" / f"{today}.html"

    def _begin(
        self, source: FeedSource, result: FetchResult, pool: WorkerPool
    ) -> tuple[FeedResult, set[int]] | _Reading:
        """Record a poll that brings nothing, or start reading its document."""
        state = self._states[source.url]
        base = PollOutcome(
            started_at=result.fetched_at,
            duration=result.duration,
            http_status=result.status,
            wire_bytes=result.wire_bytes,
        )
        started: PollOutcome | _Reading
        try:
            started = self._read(source, state, result, base, pool)
        except Exception as e:  # a bug must cost one feed, not the run
            _raise_interrupt_within(e)
            started = self._internal_error(source, state, result, base, e)
        if isinstance(started, PollOutcome):
            return FeedResult(source.url, self._name(source, state), started), set()
        return started

    def _finish(self, reading: _Reading) -> tuple[FeedResult, set[int]]:
        """Store one feed on its own, after the batch it was part of rolled back.

        In a batch of its own: what it reads to deduplicate is read under the
        writer's lock its writes take (see `Storage.begin_batch`), so another
        process storing at the same moment cannot slip in between.
        """
        source, state, storage = reading.source, reading.state, self.storage
        title = None
        try:
            storage.begin_batch()
            try:
                outcome, touched, title = self._store(reading)
                storage.commit_batch()
            except BaseException:
                if storage.batch_open:
                    storage.rollback_batch()
                raise
        except Exception as e:  # a bug must cost one feed, not the run
            _raise_interrupt_within(e)
            outcome = self._internal_error(source, state, reading.result, reading.base, e)
            touched = set()
        return FeedResult(source.url, self._name(source, state, title), outcome), touched

    def _name(self, source: FeedSource, state: FeedState, title: str | None = None) -> str:
        """The configured name, else the feed's title: as just read (a first poll has
        no other), else as stored."""
        return source.name or title or state.title or source.url

    def _internal_error(
        self,
        source: FeedSource,
        state: FeedState,
        result: FetchResult,
        base: PollOutcome,
        error: Exception,
    ) -> PollOutcome:
        log.exception("internal error while storing %s", source.url, exc_info=error)
        text = f"internal error: {type(error).__name__}: {error}"
        return self._failed(source, state, result, base, text)

    def _failed(
        self,
        source: FeedSource,
        state: FeedState,
        result: FetchResult,
        base: PollOutcome,
        error: str,
    ) -> PollOutcome:
        """Record a poll that came to `error` (its document unreadable, or a bug)."""
        outcome = _replace_outcome(base, error=error)
        timing = self._next_poll(source, state, result, outcome, state.update_hint)
        self._quiet_polls.append(
            PollRecord(state.feed_id, outcome, timing, failures_before=state.failures)
        )
        return outcome

    def _next_poll(
        self,
        source: FeedSource,
        state: FeedState,
        result: FetchResult,
        outcome: PollOutcome,
        update_hint: timedelta | None,
    ) -> NextPoll:
        failed = outcome.error is not None
        return next_poll(
            now=result.fetched_at,
            interval=source.interval,
            status=result.status,
            failed=failed,
            headers=result.headers,
            update_hint=update_hint,
            failures=state.failures + 1 if failed else 0,
        )

    def _read(
        self,
        source: FeedSource,
        state: FeedState,
        result: FetchResult,
        base: PollOutcome,
        pool: WorkerPool,
    ) -> PollOutcome | _Reading:
        moved_to = result.moved_to if result.error is None else None
        digest = body_hash(result.body) if result.ok and result.body is not None else None
        if digest is None or digest == state.body_hash:  # failed, 304, or the same bytes
            outcome = _replace_outcome(
                base,
                error=result.error,
                not_modified=result.not_modified,
                gone=result.status == 410,
            )
            timing = self._next_poll(source, state, result, outcome, state.update_hint)
            self._quiet_polls.append(
                PollRecord(
                    state.feed_id,
                    outcome,
                    timing,
                    failures_before=state.failures,
                    validators=result.validators,
                    moved_to=moved_to,
                )
            )
            return outcome
        assert result.body is not None
        fetch_limits = self.config.site.fetch
        limit = fetch_limits.max_entries_per_feed
        document = Document(result.body, result.headers, result.final_url, limit)
        # Entries stored as they stand need no reading: on a re-poll that is most.
        known = self.storage.recent_fingerprints(state.feed_id, limit)
        job = pool.submit(document, result.fetched_at, fetch_limits, known)
        return _Reading(source, state, result, base, digest, job)

    def _store(self, reading: _Reading) -> tuple[PollOutcome, set[int], str | None]:
        """Store a read document's entries: the poll's outcome, the stories it
        changed and the feed's title as the document gives it."""
        source, state, result = reading.source, reading.state, reading.result
        try:
            parsed, cleaned = reading.job.result()
        except ParseError as e:
            return self._failed(source, state, result, reading.base, str(e)), set(), None
        now = result.fetched_at
        limit = self.config.site.fetch.max_entries_per_feed
        entries = newest_entries(unique_entries(cleaned), limit)
        context = self.storage.load_context(
            state.feed_id,
            source.url,
            {e.entry_id: entry_hash(e) for e in entries},
            list(identifying_links(entries).values()),
        )
        intents = decide_feed(context, entries, now)
        outcome = _replace_outcome(
            reading.base,
            warning=parsed.warning,
            new=len(intents.new) + len(intents.added),
            updated=sum(1 for u in intents.updated if u.fields is not None),
        )
        poll = PollRecord(
            state.feed_id,
            outcome,
            self._next_poll(source, state, result, outcome, parsed.update_hint),
            failures_before=state.failures,
            validators=result.validators,
            body_hash=reading.digest,
            title=parsed.title,
            site_link=parsed.link,
            update_hint=parsed.update_hint,
            moved_to=result.moved_to if result.error is None else None,
        )
        return outcome, self.storage.apply(intents, poll), parsed.title

    # ---- publishing -----------------------------------------------------------

    def _outputs_outdated(self) -> bool:
        """Whether the config or the program changed since the outputs were last built."""
        return self.storage.get_meta(OUTPUTS_KEY) != self._fingerprint

    def publish(
        self, changed_story_ids: set[int] | None = None, *, pool: WorkerPool | None = None
    ) -> WriteReport:
        """Regenerate outputs; with `changed_story_ids`, only those they can affect.

        None means everything (the `build` command), and so does a config or
        program change since the last build (a new category, a renamed source).
        Files whose bytes would not change are left untouched either way. Many
        pages are written on another core: by `pool`'s worker (an update's,
        already running), else by one started for this publish if needed.
        """
        own = pool is None
        workers = WorkerPool(self.workers) if pool is None else pool
        try:
            with _old_objects_frozen():
                return self._publish(changed_story_ids, workers)
        except OSError as e:
            raise PublishError(self._unwritable(e)) from e
        finally:
            if own:
                workers.close()

    def _unwritable(self, error: OSError) -> str:
        """What could not be written, named by the setting that chose it, and why."""
        site = self.config.site
        setting, folder = "site.output_dir", site.output_dir
        path = Path(os.fsdecode(error.filename)) if error.filename is not None else None
        if site.posts_dir is not None and path is not None and path.is_relative_to(site.posts_dir):
            setting, folder = "site.posts_dir", site.posts_dir
        reason = error.strerror or str(error)
        where = f" ({path})" if path is not None and path != folder else ""
        return (
            f"cannot write to {folder} ({setting}): {reason}{where}; "
            "what was polled is stored and will be published once it can be"
        )

    def _publish(self, changed_story_ids: set[int] | None, pool: WorkerPool) -> WriteReport:
        # Imported here, not at the top: feedgen, Jinja2 and nh3 are a large
        # share of start-up, and an update that changes nothing never publishes.
        from aggregator.publish import publish_feeds, publish_opml

        site = self.config.site
        for folder in (site.output_dir, site.posts_dir):
            if folder is not None:
                remove_stale_temporaries(folder)
        full = (
            changed_story_ids is None
            or not (site.output_dir / "index.html").exists()
            or self._outputs_outdated()
        )
        categories = self.config.categories
        if full:
            affected = list(categories)
        else:
            names = self.storage.categories_of(changed_story_ids or set())
            affected = [c for c in categories if c.name in names]
        outputs: list[tuple[Category, Sequence[StoryView]]] = []
        if full or changed_story_ids:
            outputs.append((ALL, self.storage.newest_stories(None, site.max_entries)))
        outputs += [(c, self.storage.newest_stories(c.name, site.max_entries)) for c in affected]
        report = publish_feeds(site, outputs, categories) + publish_opml(site, categories)
        report += self._publish_digest(None if full else changed_story_ids or set(), pool)
        if site.posts_dir is not None:
            from aggregator.posts import PostOptions

            sync_all = full or not site.posts_dir.exists()
            report += self.export_posts(
                site.posts_dir,
                PostOptions(site.posts_format, site.posts_raw),
                story_ids=None if sync_all else changed_story_ids or set(),
            )
        if full:
            report += self._retire_gone_categories()
            self.storage.set_meta(OUTPUTS_KEY, self._fingerprint)
        self.storage.set_meta(UNPUBLISHED_KEY, "0")
        return report

    def _retire_gone_categories(self) -> WriteReport:
        """Delete the feeds that the last full build wrote and this one did not.

        Only slugs recorded here are deleted, never a file found in the
        folder: `feeds/` may hold files this program did not write.
        """
        from aggregator.publish import retire_feeds  # see _publish

        current = sorted({ALL.slug, *(c.slug for c in self.config.categories)})
        recorded = self.storage.get_meta(FEED_SLUGS_KEY)
        gone = set(json.loads(recorded) if recorded else ()) - set(current)
        report = retire_feeds(self.config.site, sorted(gone))
        self.storage.set_meta(FEED_SLUGS_KEY, json.dumps(current))
        return report

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def _day_bounds(self, day: date) -> tuple[datetime, datetime]:
        start = datetime.combine(day, datetime.min.time(), self.zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def _publish_digest(self, changed_story_ids: set[int] | None, pool: WorkerPool) -> WriteReport:
        """Day pages, and the category pages the changed stories touch (None: every page)."""
        from aggregator.digest_days import DayPublisher  # see _publish

        now = self.clock()
        today = self._local_day(now)
        # Pages say when their content last changed, not when they were rendered,
        # so a poll that brings nothing new rewrites nothing.
        as_of = self.storage.latest_first_seen() or now
        health = self.storage.health(failing_only=True)
        report = WriteReport()
        with self.storage.digest_reader() as reader:
            for day, previous, following in self._digest_days(today, changed_story_ids):
                report += DayPublisher(
                    self.config,
                    self.storage,
                    reader,
                    DigestDay(day.isoformat(), (), previous, following, is_today=day == today),
                    self._day_bounds(day),
                    changed_story_ids,
                    page_size=self.page_size,
                    fingerprint=self._fingerprint,
                    pool=pool,
                ).publish(health, as_of)
        return report

    def _digest_days(
        self, today: date, changed_story_ids: set[int] | None
    ) -> list[tuple[date, str | None, str | None]]:
        """(day, previous day, next day) of the day pages to render, oldest first.

        Days are those with stories, and today. Without changes that is every
        day, found one index step per day; with changes, the days of the
        changed stories, today, and the day before today (its next-day link).
        """
        if changed_story_ids is None:
            days = {today}
            moment = self.storage.earliest_first_seen()
            while moment is not None:
                day = self._local_day(moment)
                days.add(day)
                moment = self.storage.earliest_first_seen(self._day_bounds(day)[1])
            ordered = sorted(days)
            return [
                (
                    day,
                    ordered[i - 1].isoformat() if i > 0 else None,
                    ordered[i + 1].isoformat() if i + 1 < len(ordered) else None,
                )
                for i, day in enumerate(ordered)
            ]
        wanted = {self._local_day(t) for t in self.storage.first_seen_times(changed_story_ids)}
        wanted.add(today)
        before_today = self.storage.latest_first_seen(self._day_bounds(today)[0])
        if before_today is not None:
            wanted.add(self._local_day(before_today))
        found = []
        for day in sorted(wanted):
            start, end = self._day_bounds(day)
            earlier = self.storage.latest_first_seen(start)
            later = self.storage.earliest_first_seen(end)
            previous = [self._local_day(earlier)] if earlier is not None else []
            following = [self._local_day(later)] if later is not None else []
            previous += [today] if today < day else []
            following += [today] if today > day else []
            found.append(
                (
                    day,
                    max(previous).isoformat() if previous else None,
                    min(following).isoformat() if following else None,
                )
            )
        return found

    # ---- posts --------------------------------------------------------------------

    def export_posts(
        self,
        directory: Path,
        options: PostOptions,
        *,
        category: str | None = None,
        since: date | None = None,
        story_ids: set[int] | None = None,
        on_total: Callable[[int], None] | None = None,
        on_written: Callable[[Path, bool], None] | None = None,
    ) -> WriteReport:
        """Write each story (of a category, published since a local day) as a post file.

        `options` come without a zone and category order; this fills them in
        from the config. Unchanged files are left as they are.
        """
        options = dataclasses.replace(
            options,
            zone=self.zone,
            category_order=tuple(c.name for c in self.config.categories),
        )
        start = self._day_bounds(since)[0] if since is not None else None
        ids = self.storage.story_ids_for_export(category, start, story_ids)
        if on_total is not None:
            on_total(len(ids))
        from aggregator.posts import PostFolder  # see _publish

        folder = PostFolder(directory, options)
        written: list[Path] = []
        unchanged: list[Path] = []
        for first in range(0, len(ids), EXPORT_BATCH):
            for story in self.storage.stories_with_raw_body(ids[first : first + EXPORT_BATCH]):
                path, changed = folder.write(story)
                (written if changed else unchanged).append(path)
                if on_written is not None:
                    on_written(path, changed)
        return WriteReport(tuple(written), tuple(unchanged))

    # ---- status -----------------------------------------------------------------

    def status(self) -> StatusReport:
        return StatusReport(self.storage.count_stories(), tuple(self.storage.health()))


def outputs_fingerprint(config: Config) -> str:
    """A hash of everything besides stored stories that shapes the published files."""
    site = config.site
    shaping = {
        "version": __version__,
        "site": [site.title, site.base_url, site.timezone, site.language, site.max_entries,
                 site.digest_per_category, DIGEST_PAGE_SIZE],
        "categories": [[c.name, c.slug] for c in config.categories],
        "feeds": [[f.url, f.name, list(f.categories)] for f in config.feeds],
        "posts": [str(site.posts_dir), site.posts_format, site.posts_raw],
    }  # fmt: skip
    return hashlib.sha1(json.dumps(shaping).encode(), usedforsecurity=False).hexdigest()


_freezing_lock = threading.Lock()
_freezing_depth = 0  # how many `_old_objects_frozen` blocks are open, in any thread


@contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Keep the cycle collector to what is made meanwhile.

    Polling and publishing make hundreds of thousands of short-lived objects,
    and every full collection they set off would also walk everything already
    alive (the modules, SQLAlchemy's caches, what the poll before left): a
    quarter of a small publish's time, half the collector's in a first poll.
    Frozen objects are skipped until thawed when the last open block ends;
    that thaws what `launch` froze at start-up too, so a long `run` can
    collect whatever of it later becomes garbage.
    """
    global _freezing_depth
    with _freezing_lock:
        if _freezing_depth == 0:
            gc.freeze()
        _freezing_depth += 1
    try:
        yield
    finally:
        with _freezing_lock:
            _freezing_depth -= 1
            if _freezing_depth == 0:
                gc.unfreeze()


def _raise_interrupt_within(error: BaseException) -> None:
    """Raise the Ctrl-C that `error` wraps, if it wraps one.

    SQLAlchemy turns a KeyboardInterrupt raised inside the database driver
    into an error of its own, which would otherwise be recorded against the
    feed as a bug while the poll went on.
    """
    interrupt = cause_of(error, KeyboardInterrupt)
    if interrupt is not None:
        raise interrupt


def _replace_outcome(base: PollOutcome, **changes: object) -> PollOutcome:
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def make_aggregator(config_path: Path, clock: Callable[[], datetime] = _utcnow) -> Aggregator:
    """Load the config and open its database: the one door to a working aggregator."""
    config = load_config(config_path)
    return Aggregator(config, open_storage(config.site.database_url), clock)
