"""Feeds: matching the config, what is due, the polls' bookkeeping, and each feed's health.

Polls are written here, with what each leaves on its feed's row, whether they come
alone, with a stored document (see `ingest`) or at the end of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from aggregator.models import (
    CacheValidators,
    FeedHealth,
    FeedSource,
    FeedState,
    PollOutcome,
    PollRecord,
)
from aggregator.storage.connections import Connections, exclusive_transaction
from aggregator.storage.rows import RowInsert, RowUpdate, in_chunks
from aggregator.storage.schema import (
    FEED_CATEGORIES_TABLE,
    FEEDS_TABLE,
    META_TABLE,
    POLLS_TABLE,
    SOURCES_TABLE,
    UNPUBLISHED_KEY,
)

POLL_HISTORY_DAYS = 30


def _feed_state(row: Row[Any]) -> FeedState:
    return FeedState(
        feed_id=row.id,
        url=row.url,
        name=row.name,
        title=row.title,
        validators=CacheValidators(row.etag, row.last_modified),
        body_hash=row.body_hash,
        last_poll=row.last_poll,
        next_check=row.next_check,
        state=row.state,
        failures=row.error_count,
        not_before=row.not_before,
        update_hint=(
            timedelta(seconds=row.update_hint_seconds) if row.update_hint_seconds else None
        ),
        moved_to=row.moved_to,
    )


def _failing_changed(previous: tuple[str, str | None], outcome: PollOutcome) -> bool:
    """Whether the list of failing sources the pages show changes with this poll."""
    failing = {previous[0], outcome.state} - {"ok", "new"}
    return bool(failing) and previous != (outcome.state, outcome.error)


def _poll_row(feed_id: int, outcome: PollOutcome) -> tuple[Any, ...]:
    """A row of the polls table, in `_INSERT_POLL`'s order."""
    return (
        *(feed_id, outcome.started_at, outcome.duration, outcome.http_status),
        *(outcome.wire_bytes, outcome.error, outcome.warning, outcome.new, outcome.updated),
    )


def _feed_values(poll: PollRecord) -> dict[str, Any]:
    """The feeds-row columns one poll sets."""
    outcome = poll.outcome
    values: dict[str, Any] = {
        "last_poll": outcome.started_at,
        "http_status": outcome.http_status,
        "last_error": outcome.error,
        "state": outcome.state,
        "next_check": poll.next_poll.at,
        "not_before": poll.next_poll.not_before,
    }
    if outcome.error:
        values["error_count"] = poll.failures_before + 1
        return values
    values["error_count"] = 0
    values["last_success"] = outcome.started_at
    validators = poll.validators
    if validators is not None:
        if validators.etag is not None or not outcome.not_modified:
            values["etag"] = validators.etag
        if validators.last_modified is not None or not outcome.not_modified:
            values["last_modified"] = validators.last_modified
    if poll.body_hash is not None:  # the document was parsed: its warning is current
        values["body_hash"] = poll.body_hash
        values["last_warning"] = outcome.warning
        hint = poll.update_hint
        values["update_hint_seconds"] = int(hint.total_seconds()) if hint else None
    if poll.title:
        values["title"] = poll.title
    if poll.site_link:
        values["site_link"] = poll.site_link
    if poll.moved_to:
        values["moved_to"] = poll.moved_to
    return values


_UPDATE_FEED = RowUpdate(FEEDS_TABLE)
_INSERT_POLL = RowInsert(
    POLLS_TABLE,
    *("feed_id", "started_at", "duration", "http_status", "wire_bytes", "error", "warning"),
    *("new_entries", "updated_entries"),
)


class Feeds(Connections):
    """The feeds table and the polls table."""

    def sync_feeds(self, sources: Sequence[FeedSource], now: datetime) -> dict[str, FeedState]:
        """Make the feeds table match the config; feeds no longer listed become inactive.

        Every run starts here: an unchanged config is only read. A changed one
        is written holding the write lock (see `exclusive_transaction`), read
        again under it, as another command may have just written the same.
        """
        with self.engine.connect() as connection:
            states = _synced_feeds(connection, sources, now, write=False)
        if states is None:
            with exclusive_transaction(self.engine) as connection:
                states = _synced_feeds(connection, sources, now, write=True)
        assert states is not None
        return states

    def forget_validators_once(self, key: str, value: str) -> bool:
        """Drop every feed's ETag and Last-Modified unless meta `key` already says `value`,
        then record it; whether they were dropped.

        For a change to how documents are read: a server answering 304 would
        never send its document again to be read the new way.
        """
        recorded = select(META_TABLE.c.value).where(META_TABLE.c.key == key)
        with self.engine.connect() as connection:
            if connection.scalar(recorded) == value:
                return False
        with exclusive_transaction(self.engine) as connection:  # see sync_feeds
            if connection.scalar(recorded) == value:
                return False
            connection.execute(update(FEEDS_TABLE).values(etag=None, last_modified=None))
            self._set_meta(connection, key, value)
            return True

    def feed_states(self) -> dict[str, FeedState]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(FEEDS_TABLE).where(FEEDS_TABLE.c.active))
            return {row.url: _feed_state(row) for row in rows}

    def due_feeds(self, now: datetime) -> list[str]:
        """URLs of active feeds whose next check has come (the database says what is due)."""
        with self.engine.connect() as connection:
            query = (
                select(FEEDS_TABLE.c.url)
                .where(FEEDS_TABLE.c.active, FEEDS_TABLE.c.state != "gone")
                .where((FEEDS_TABLE.c.next_check.is_(None)) | (FEEDS_TABLE.c.next_check <= now))
                .order_by(FEEDS_TABLE.c.next_check, FEEDS_TABLE.c.position)
            )
            return list(connection.scalars(query))

    def record_polls(self, polls: Sequence[PollRecord]) -> None:
        """Record polls that stored nothing (errors, 304s, unchanged bodies) together.

        One transaction for many feeds: on a re-poll where every server says
        304, per-feed transactions were most of the time spent.
        """
        if polls:
            with self._writing() as connection:
                self._write_polls(connection, polls)

    def _write_polls(self, connection: Connection, polls: Sequence[PollRecord]) -> None:
        """The poll rows and what each poll leaves on its feed's row."""
        previous: dict[int, tuple[str, str | None]] = {}
        for chunk in in_chunks(sorted({p.feed_id for p in polls})):
            query = select(FEEDS_TABLE.c.id, FEEDS_TABLE.c.state, FEEDS_TABLE.c.last_error).where(
                FEEDS_TABLE.c.id.in_(chunk)
            )
            for feed_id, state, error in connection.execute(query):
                previous[feed_id] = (state, error)
        if any(_failing_changed(previous[p.feed_id], p.outcome) for p in polls):
            # Pages list failing sources: a kill before they are rebuilt must
            # not hide this change from the next run.
            self._set_meta(connection, UNPUBLISHED_KEY, "1")
        _INSERT_POLL.run(connection, [_poll_row(p.feed_id, p.outcome) for p in polls])
        _UPDATE_FEED.run(connection, ((poll.feed_id, _feed_values(poll)) for poll in polls))

    def prune_polls(self, now: datetime) -> None:
        """Poll history is for diagnosis; a month of it is plenty."""
        cutoff = now - timedelta(days=POLL_HISTORY_DAYS)
        with self.engine.begin() as connection:
            connection.execute(delete(POLLS_TABLE).where(POLLS_TABLE.c.started_at < cutoff))

    def health(self, *, failing_only: bool = False) -> list[FeedHealth]:
        """Every active feed's last poll and entry count, in config order.

        `failing_only`: only the feeds pages warn about (`FeedHealth.failing`),
        without counting every entry (their counts are 0).
        """
        with self.engine.connect() as connection:
            counts: dict[int, int] = {}
            query = select(FEEDS_TABLE).where(FEEDS_TABLE.c.active).order_by(FEEDS_TABLE.c.position)
            if failing_only:
                query = query.where(FEEDS_TABLE.c.state.not_in(("ok", "new")))
            else:
                by_feed = select(SOURCES_TABLE.c.feed_id, func.count()).group_by(
                    SOURCES_TABLE.c.feed_id
                )
                counts.update((feed_id, n) for feed_id, n in connection.execute(by_feed))
            rows = connection.execute(query).all()
            found = [
                FeedHealth(
                    url=row.url,
                    name=row.name or row.title or row.url,
                    state=row.state,
                    last_poll=row.last_poll,
                    http_status=row.http_status,
                    last_error=row.last_error,
                    entries=counts.get(row.id, 0),
                    next_check=row.next_check,
                    last_warning=row.last_warning,
                    not_before=row.not_before,
                    moved_to=row.moved_to,
                )
                for row in rows
            ]
            return [h for h in found if h.failing] if failing_only else found


def _synced_feeds(
    connection: Connection, sources: Sequence[FeedSource], now: datetime, *, write: bool
) -> dict[str, FeedState] | None:
    """`Storage.sync_feeds` on `connection`; None when there is something to write
    and not `write`."""
    rows = {row.url: row for row in connection.execute(select(FEEDS_TABLE))}
    wanted = {source.url for source in sources}
    retired = [row.id for row in rows.values() if row.active and row.url not in wanted]
    new: list[dict[str, Any]] = []
    changed: list[tuple[int, dict[str, Any]]] = []
    for position, source in enumerate(sources):
        values = {
            "name": source.name,
            "active": True,
            "position": position,
            "interval_seconds": int(source.interval.total_seconds()),
        }
        row = rows.get(source.url)
        if row is None:
            new.append({"url": source.url, "state": "new", "next_check": now, **values})
        elif any(getattr(row, name) != value for name, value in values.items()):
            changed.append((row.id, values))
    if retired or changed or new:
        if not write:
            return None
        for chunk in in_chunks(retired):
            connection.execute(
                update(FEEDS_TABLE).where(FEEDS_TABLE.c.id.in_(chunk)).values(active=False)
            )
        _UPDATE_FEED.run(connection, changed)
        if new:
            connection.execute(insert(FEEDS_TABLE), new)
        rows = {row.url: row for row in connection.execute(select(FEEDS_TABLE))}
    links = [
        {"feed_id": rows[s.url].id, "category": c, "position": position}
        for s in sources
        for position, c in enumerate(dict.fromkeys(s.categories))
    ]
    stored = connection.execute(
        select(
            FEED_CATEGORIES_TABLE.c.feed_id,
            FEED_CATEGORIES_TABLE.c.category,
            FEED_CATEGORIES_TABLE.c.position,
        )
    )
    if {tuple(link.values()) for link in links} != set(map(tuple, stored)):
        if not write:
            return None
        connection.execute(delete(FEED_CATEGORIES_TABLE))
        if links:
            connection.execute(insert(FEED_CATEGORIES_TABLE), links)
    return {s.url: _feed_state(rows[s.url]) for s in sources}
