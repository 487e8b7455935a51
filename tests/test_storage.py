"""aggregator.storage against real SQLite files in tmp_path and a real PostgreSQL server."""

import sqlite3
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import aggregator.storage as storage_module
from aggregator.decide import decide_feed, identifying_links
from aggregator.identity import content_hash
from aggregator.models import EntryData, FeedSource, NextPoll, PollOutcome, PollRecord
from aggregator.storage import SCHEMA_REVISION, Storage, open_storage
from tests.postgres import PostgresServer

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
A = FeedSource("https://a.test/feed", "Feed A", ("tech",), timedelta(minutes=30))
B = FeedSource("https://b.test/feed", None, ("science", "tech"), timedelta(minutes=15))


def entry(entry_id: str, link: str | None, minutes_ago: int = 10, **changes: object) -> EntryData:
    values: dict[str, object] = dict(
        entry_id=entry_id,
        title=f"Title {entry_id}",
        link=link,
        author=None,
        published=NOW - timedelta(minutes=minutes_ago),
        updated=None,
        summary=f"<p>{entry_id}</p>",
        content=None,
    )
    values.update(changes)
    return EntryData(**values)  # type: ignore[arg-type]


def ingest(storage: Storage, source: FeedSource, entries: list[EntryData], now: datetime = NOW):
    state = storage.feed_states()[source.url]
    context = storage.load_context(
        state.feed_id,
        source.url,
        {e.entry_id: content_hash(e) for e in entries},
        list(identifying_links(entries).values()),
    )
    intents = decide_feed(context, entries, now)
    outcome = PollOutcome(started_at=now, duration=0.1, http_status=200, wire_bytes=100)
    touched = storage.apply(
        intents, PollRecord(state.feed_id, outcome, NextPoll(now + source.interval))
    )
    return intents, touched


def downgrade(storage: Storage, revision: str) -> None:
    """Take the schema back to `revision` with Alembic, as an older program left it."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(storage_module.MIGRATIONS))
    with storage.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def open_db(url: str) -> Storage:
    storage = open_storage(url)
    storage.sync_feeds([A, B], NOW)
    return storage


def test_fresh_sqlite_database_is_migrated_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    storage = open_db(f"sqlite:///{tmp_path / 'sub' / 'agg.db'}")
    storage.close()
    connection = sqlite3.connect(tmp_path / "sub" / "agg.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("SELECT version_num FROM alembic_version").fetchone()[0] == (
        SCHEMA_REVISION
    )
    reopened = open_storage(f"sqlite:///{tmp_path / 'sub' / 'agg.db'}")
    with reopened.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_reopening_a_migrated_database_keeps_its_data(database_url: str) -> None:
    storage = open_db(database_url)
    ingest(storage, A, [entry("a1", "https://x.test/1")])
    storage.close()
    again = open_storage(database_url)
    assert again.count_stories() == 1


def test_ingest_then_read_back_by_category(database_url: str) -> None:
    storage = open_db(database_url)
    ingest(storage, A, [entry("a1", "https://x.test/1", 30), entry("a2", "https://x.test/2", 5)])
    ingest(storage, B, [entry("b1", "https://y.test/1", 1)])
    assert [s.title for s in storage.newest_stories(None, 10)] == [
        "Title b1",
        "Title a2",
        "Title a1",
    ]
    assert [s.title for s in storage.newest_stories("science", 10)] == ["Title b1"]
    assert len(storage.newest_stories("tech", 10)) == 3
    assert len(storage.newest_stories("tech", 2)) == 2
    b1 = storage.newest_stories("science", 1)[0]
    assert b1.categories == ("science", "tech")
    assert b1.sources[0].name == "https://b.test/feed"  # no name and no title yet: the URL
    assert storage.count_stories() == 3


def test_second_ingest_of_same_entries_stores_nothing(database_url: str) -> None:
    storage = open_db(database_url)
    entries = [entry("a1", "https://x.test/1"), entry("a2", None)]
    ingest(storage, A, entries)
    intents, touched = ingest(storage, A, entries, NOW + timedelta(minutes=30))
    assert not intents.changed and not touched
    assert storage.count_stories() == 2


def test_cross_post_is_one_story_with_both_sources_and_union_of_categories(
    database_url: str,
) -> None:
    storage = open_db(database_url)
    ingest(storage, A, [entry("a1", "https://x.test/s?utm_source=a", thumbnail=None)])
    ingest(storage, B, [entry("b9", "https://X.test/s#frag", thumbnail="https://img.test/t.png")])
    (story,) = storage.newest_stories(None, 10)
    assert [s.feed_url for s in story.sources] == [A.url, B.url]
    assert set(story.categories) == {"tech", "science"}
    assert story.thumbnail == "https://img.test/t.png"  # filled from the second source
    assert storage.newest_stories("science", 10)[0].uid == story.uid


def test_feed_listed_first_takes_over_a_story_it_joins_and_keeps_it(database_url: str) -> None:
    storage = open_db(database_url)  # A is listed before B
    from_b = entry("b1", "https://x.test/s#c", title="From B", thumbnail="https://img.test/b.png")
    ingest(storage, B, [from_b])
    intents, touched = ingest(storage, A, [entry("a1", "https://x.test/s", title="From A")])
    assert [a.takes_over for a in intents.added] == [True] and touched
    (story,) = storage.newest_stories(None, 10)
    assert (story.title, story.link) == ("From A", "https://x.test/s")
    assert story.thumbnail == "https://img.test/b.png"  # B fills what A lacks
    assert [s.feed_url for s in story.sources] == [A.url, B.url]  # the owner leads

    ingest(storage, B, [replace(from_b, title="B edited")])
    assert storage.newest_stories(None, 10)[0].title == "From A"  # B only fills
    ingest(storage, A, [entry("a1", "https://x.test/s", title="A edited")])
    assert storage.newest_stories(None, 10)[0].title == "A edited"  # the owner's edit counts


def test_a_story_of_a_feed_no_longer_listed_goes_to_the_listed_feed_that_joins_it(
    database_url: str,
) -> None:
    storage = open_db(database_url)
    ingest(storage, A, [entry("a1", "https://x.test/s", title="From A")])
    storage.sync_feeds([B], NOW)  # A, listed first until now, is removed
    intents, _ = ingest(storage, B, [entry("b1", "https://x.test/s", title="From B")])
    assert [a.takes_over for a in intents.added] == [True]
    (story,) = storage.newest_stories(None, 10)
    assert story.title == "From B"


def test_removed_feed_drops_out_of_outputs(database_url: str) -> None:
    storage = open_db(database_url)
    ingest(storage, B, [entry("b1", "https://y.test/1")])
    storage.sync_feeds([A], NOW)
    assert storage.newest_stories(None, 10) == []
    assert [h.url for h in storage.health()] == [A.url]


def test_an_edited_feed_entry_of_the_config_changes_the_feed_and_keeps_its_state(
    database_url: str,
) -> None:
    storage = open_db(database_url)
    storage.record_polls(
        [
            PollRecord(
                storage.feed_states()[A.url].feed_id,
                PollOutcome(
                    started_at=NOW, duration=0.1, http_status=304, wire_bytes=0, not_modified=True
                ),
                NextPoll(at=NOW + timedelta(minutes=30)),
            )
        ]
    )
    renamed = FeedSource(A.url, "Feed A, renamed", A.categories, timedelta(hours=2))
    states = storage.sync_feeds([B, renamed], NOW)
    assert states[A.url].name == "Feed A, renamed"
    assert states[A.url].last_poll == NOW  # what polling learnt stays
    with storage.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT url, position, interval_seconds, active FROM feeds ORDER BY position"
        ).all()
    assert [tuple(row) for row in rows] == [(B.url, 0, 900, True), (A.url, 1, 7200, True)]
    assert storage.sync_feeds([B, renamed], NOW) == states  # unchanged: nothing to write


def test_first_seen_window_and_health(database_url: str) -> None:
    storage = open_db(database_url)
    ingest(storage, A, [entry("old", "https://x.test/old")], NOW - timedelta(days=1))
    _, touched = ingest(
        storage, A, [entry("old", "https://x.test/old"), entry("new", "https://x.test/new")]
    )
    window = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    with storage.digest_reader() as reader:
        today = list(reader.day_members(*window))
    assert [(m.category, m.story_id) for m in today] == [("tech", *touched)]
    assert storage.earliest_first_seen() == NOW - timedelta(days=1)
    assert storage.earliest_first_seen(window[0]) == NOW
    assert storage.latest_first_seen(window[0]) == NOW - timedelta(days=1)
    health = {h.url: h for h in storage.health()}
    assert health[A.url].entries == 2 and health[A.url].state == "ok"
    assert health[A.url].next_check == NOW + A.interval
    assert health[B.url].state == "new" and health[B.url].last_poll is None


def test_failed_poll_is_recorded_and_keeps_validators(database_url: str) -> None:
    from aggregator.models import CacheValidators

    storage = open_db(database_url)
    feed_id = storage.feed_states()[A.url].feed_id
    ok = PollOutcome(started_at=NOW, duration=0.1, http_status=200, wire_bytes=5)
    storage.record_polls(
        [PollRecord(feed_id, ok, NextPoll(NOW), validators=CacheValidators('"v1"', None))]
    )
    failed = PollOutcome(
        started_at=NOW, duration=1.0, http_status=500, wire_bytes=0, error="HTTP 500"
    )
    storage.record_polls([PollRecord(feed_id, failed, NextPoll(NOW))])
    state = storage.feed_states()[A.url]
    assert state.validators.etag == '"v1"' and state.state == "error"
    (health,) = [h for h in storage.health() if h.url == A.url]
    assert health.last_error == "HTTP 500" and health.http_status == 500


def test_database_at_an_older_revision_is_migrated_on_open(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine

    import aggregator.storage

    config = AlembicConfig()
    config.set_main_option("script_location", str(aggregator.storage.MIGRATIONS))
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    storage = open_db(database_url)
    storage.set_meta("k", "v1")
    storage.set_meta("k", "v2")
    assert storage.get_meta("k") == "v2" and storage.get_meta("absent") is None


def test_schema_built_by_the_migrations_matches_the_models(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from aggregator.storage import METADATA

    storage = open_db(database_url)
    with storage.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), METADATA)
    assert differences == []


def test_raw_body_and_each_source_with_its_channel_title_and_categories(
    database_url: str,
) -> None:
    storage = open_db(database_url)
    storage.sync_feeds([B, A], NOW)  # B listed first: its story stays its own when A joins
    raw = "<div>   \n<p align=center>Raw <img src=x.png></p>"
    ingest(storage, B, [entry("b1", "https://x.test/s", raw_body=raw)])
    state = storage.feed_states()[B.url]
    outcome = PollOutcome(started_at=NOW, duration=0.1, http_status=200, wire_bytes=1)
    storage.apply(
        decide_feed(storage.load_context(state.feed_id, B.url, {}, []), [], NOW),
        PollRecord(state.feed_id, outcome, NextPoll(NOW), title="最新新闻"),
    )
    ingest(storage, A, [entry("a1", "https://x.test/s")])
    ids = storage.story_ids_for_export()
    (story,) = storage.stories_with_raw_body(ids)
    assert story.raw_body == raw
    assert [(s.name, s.channel_title, s.categories) for s in story.sources] == [
        ("最新新闻", "最新新闻", ("science", "tech")),  # unnamed: its own title; config order
        ("Feed A", None, ("tech",)),
    ]
    assert storage.newest_stories(None, 1)[0].raw_body is None  # publishing never loads it
    assert storage.story_ids_for_export("science") == ids
    assert storage.story_ids_for_export(None, NOW) == []  # published ten minutes before NOW
    assert storage.story_ids_for_export(None, NOW - timedelta(hours=1), ids) == ids


def test_story_stored_before_raw_html_was_kept_survives_the_upgrade(tmp_path: Path) -> None:

    storage = open_db(f"sqlite:///{tmp_path / 'agg.db'}")
    ingest(storage, A, [entry("a1", "https://x.test/1", raw_body="<p>raw</p>")])
    downgrade(storage, "0002")
    storage.close()
    upgraded = open_storage(f"sqlite:///{tmp_path / 'agg.db'}")
    (story,) = upgraded.stories_with_raw_body(upgraded.story_ids_for_export())
    assert story.title == "Title a1" and story.raw_body is None
    assert story.sources[0].categories == ("tech",)


def test_a_change_in_failing_sources_is_remembered_until_pages_show_it(
    database_url: str,
) -> None:
    from aggregator.storage import UNPUBLISHED_KEY

    storage = open_db(database_url)
    feed_id = storage.feed_states()[A.url].feed_id
    ok = PollOutcome(started_at=NOW, duration=0.1, http_status=200, wire_bytes=5)
    failed = PollOutcome(started_at=NOW, duration=1.0, http_status=500, wire_bytes=0, error="500")
    storage.record_polls([PollRecord(feed_id, ok, NextPoll(NOW))])
    assert storage.get_meta(UNPUBLISHED_KEY) is None  # new → ok: nothing pages show
    storage.record_polls([PollRecord(feed_id, failed, NextPoll(NOW))])
    assert storage.get_meta(UNPUBLISHED_KEY) == "1"
    storage.set_meta(UNPUBLISHED_KEY, "0")  # what publishing does
    storage.record_polls([PollRecord(feed_id, failed, NextPoll(NOW))])
    assert storage.get_meta(UNPUBLISHED_KEY) == "0"  # the same failure again
    storage.record_polls([PollRecord(feed_id, ok, NextPoll(NOW))])
    assert storage.get_meta(UNPUBLISHED_KEY) == "1"  # recovered


def test_raw_html_is_stored_deflated_and_survives_migrating_down_and_up(
    database_url: str,
) -> None:
    from sqlalchemy import text

    raw = "<div>原文 <p align=center>Raw <img src=x.png></p>" * 20
    storage = open_db(database_url)
    ingest(storage, A, [entry("a1", "https://x.test/1", raw_body=raw)])
    with storage.engine.connect() as connection:
        stored = connection.execute(text("SELECT raw_body FROM stories")).scalar_one()
    assert isinstance(stored, bytes) and len(stored) < len(raw.encode()) / 4
    downgrade(storage, "0004")
    with storage.engine.connect() as connection:
        assert connection.execute(text("SELECT raw_body FROM stories")).scalar_one() == raw
    storage.close()
    upgraded = open_storage(database_url)
    (story,) = upgraded.stories_with_raw_body(upgraded.story_ids_for_export())
    assert story.raw_body == raw
    assert upgraded.newest_stories(None, 5)[0].title == "Title a1"


# --------------------------------------------------------------------------- digest reads

DAY = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
U = FeedSource("https://u.test/feed", "Feed U", (), timedelta(minutes=30))


def story_ids(storage: Storage, source: FeedSource, entries: list[EntryData]) -> list[int]:
    """Ingest new entries and return their story ids in entry order."""
    _, touched = ingest(storage, source, entries)
    assert len(touched) == len(entries)
    return sorted(touched)


def test_digest_lists_follow_the_order_stories_reached_each_category(database_url: str) -> None:
    storage = open_db(database_url)
    a1, a2 = story_ids(
        storage, A, [entry("a1", "https://x.test/1", 30), entry("a2", "https://x.test/2", 5)]
    )
    # B (science, tech) brings a new story and cross-posts a1, which reaches science only
    # now, and before b1: B's entries are stored oldest first.
    ingest(storage, B, [entry("b1", "https://y.test/1", 1), entry("b2", "https://x.test/1", 40)])
    (b1,) = [s for s in storage.story_ids_for_export() if s not in (a1, a2)]
    with storage.digest_reader() as reader:
        members = list(reader.day_members(*DAY))
        by_category = {
            c: [m.story_id for m in members if m.category == c] for c in ("science", "tech")
        }
        assert by_category == {"science": [a1, b1], "tech": [a1, a2, b1]}
        assert [m.category for m in members] == sorted(m.category or "" for m in members)
        keys = {(m.category, m.story_id): m.key for m in members}
        # A page starting after a1's tech key leaves a1 out, though B's source of it is later.
        tech_from_a2 = reader.page_members(*DAY, "tech", keys["tech", a2], 10**9)
        assert [m.story_id for m in tech_from_a2] == [a2, b1]
        assert [m.story_id for m in reader.page_members(*DAY, "science", 0, 10**9)] == [a1, b1]
        assert sorted((m.category, m.story_id) for m in reader.members_of([a1], *DAY)) == [
            ("science", a1),
            ("tech", a1),
        ]
        assert [m.story_id for m in reader.newest(*DAY, "tech", 2)] == [b1, a2]  # by published
        assert reader.members_of([a1], NOW + timedelta(days=1), NOW + timedelta(days=2)) == []


def test_cards_are_made_once_and_remade_after_the_story_changes(database_url: str) -> None:
    storage = open_db(database_url)
    (a1,) = story_ids(storage, A, [entry("a1", "https://x.test/1")])
    bodies: list[tuple[str | None, str | None]] = []

    def excerpt(summary: str | None, content: str | None) -> str:
        bodies.append((summary, content))
        return f"excerpt {len(bodies)}"

    with storage.digest_reader() as reader:
        # A new story's card is made as it is stored, as making it later would make it.
        (member,) = reader.day_members(*DAY)
        stored = reader.stories([a1])
        assert member.story == stored[a1]
        made = reader.make_cards([a1], excerpt)
        assert made == stored == reader.stories([a1])
        assert bodies == []  # the story's excerpt was made when it was stored
        assert made[a1].title == "Title a1" and made[a1].excerpt == "a1"
        assert [s.name for s in made[a1].sources] == ["Feed A"]

    # A second source changes what the card shows: its card goes, and so on an edit.
    ingest(storage, B, [entry("b1", "https://x.test/1")])
    with storage.digest_reader() as reader:
        assert reader.stories([a1]) == {}
        card = reader.make_cards([a1], excerpt)[a1]
        assert [s.name for s in card.sources] == ["Feed A", "https://b.test/feed"]
    ingest(storage, A, [entry("a1", "https://x.test/1", title="Edited", summary="<p>New</p>")])
    with storage.digest_reader() as reader:
        assert reader.stories([a1]) == {}
        card = reader.make_cards([a1], excerpt)[a1]
        assert (card.title, card.excerpt) == ("Edited", "New")
    assert bodies == []


def test_bodies_are_stored_deflated_and_older_stories_get_excerpts_from_them(
    database_url: str,
) -> None:
    from sqlalchemy import text

    body = "<p>正文 <b>Body</b> text</p>" * 40
    storage = open_db(database_url)
    (a1,) = story_ids(storage, A, [entry("a1", "https://x.test/1", summary=None, content=body)])
    with storage.engine.connect() as connection:
        stored, made = connection.execute(text("SELECT content, excerpt FROM stories")).one()
    assert isinstance(stored, bytes) and len(stored) < len(body.encode()) / 4
    assert made.startswith("正文 Body text 正文 Body text")
    # Back to before bodies were deflated and excerpts kept, and up again.
    downgrade(storage, "0006")
    with storage.engine.connect() as connection:
        assert connection.execute(text("SELECT content FROM stories")).scalar_one() == body
    storage.close()
    upgraded = open_storage(database_url)
    assert upgraded.newest_stories(None, 5)[0].content == body
    asked: list[tuple[str | None, str | None]] = []

    def excerpt(summary: str | None, content: str | None) -> str:
        asked.append((summary, content))
        return "from the bodies"

    with upgraded.digest_reader() as reader:
        assert reader.make_cards([a1], excerpt)[a1].excerpt == "from the bodies"
    assert asked == [(None, body)]


def test_times_are_written_as_sqlalchemy_writes_datetimes_on_sqlite() -> None:
    # Stored times are compared as text in SQL (next_check <= now): the quick
    # writer must give SQLAlchemy's spelling to the character.
    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    reference = DateTime().dialect_impl(dialect).bind_processor(dialect)
    written = storage_module.UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert reference is not None and written is not None
    moments = [
        datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 12, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    for moment in moments:
        assert written(moment) == reference(moment.astimezone(UTC).replace(tzinfo=None))
    assert written(None) is None
    # The writer remembers its last value: repeats, and whatever follows them, stay right.
    repeated = [moments[1], moments[1], None, None, moments[2], moments[1], moments[1]]
    assert [written(m) for m in repeated] == [
        None if m is None else reference(m.astimezone(UTC).replace(tzinfo=None)) for m in repeated
    ]
    with pytest.raises(ValueError, match="naive"):
        written(datetime(2024, 1, 1))


def test_stories_of_feeds_in_no_category_form_their_own_list(database_url: str) -> None:
    storage = open_storage(database_url)
    storage.sync_feeds([A, U], NOW)
    (u1,) = story_ids(storage, U, [entry("u1", "https://u.test/1")])
    (shared,) = story_ids(storage, U, [entry("u2", "https://u.test/2")])
    ingest(storage, A, [entry("a1", "https://u.test/2")])  # now in tech as well
    with storage.digest_reader() as reader:
        members = [(m.category, m.story_id) for m in reader.day_members(*DAY)]
        assert members == [("tech", shared), (None, u1)]
        assert [m.story_id for m in reader.page_members(*DAY, None, 0, 10**9)] == [u1]
        assert [m.story_id for m in reader.newest(*DAY, None, 5)] == [u1]


def test_rows_given_to_the_driver_are_stored_as_sqlalchemy_stores_them(database_url: str) -> None:
    """The bulk inserts skip SQLAlchemy's per-row parameters: the stored bytes must not differ."""
    from sqlalchemy import insert, text

    from aggregator.compact import pack
    from aggregator.models import Enclosure, NewStory, StoryFields

    storage = open_db(database_url)
    feed_id = storage.feed_states()[A.url].feed_id
    shanghai = timezone(timedelta(hours=8))
    fields = StoryFields(
        title="两大摄影巨头 'quoted' \\ back",
        link="https://x.test/1?a=1&b=2",
        author=None,
        summary=pack("<p>正文</p>" * 30),  # deflated by the worker
        content="<p>not packed</p>",
        thumbnail=None,
        published=datetime(2022, 5, 31, 17, 14, 18, 250, tzinfo=shanghai),
        updated=None,
        tags=("松下", "camera"),
        enclosures=(Enclosure("https://x.test/a.mp3", "audio/mpeg", 12),),
        raw_body="<div>raw</div>",
    )
    via_driver = NewStory("e1", "h1", "https://x.test/1", "uid-driver", fields)
    via_core = NewStory("e2", "h2", "https://x.test/2", "uid-core", fields)
    with storage.engine.begin() as connection:
        storage_module.INSERT_STORY.run(
            connection, [storage_module.story_row(via_driver, feed_id, NOW)]
        )
        columns = [c.name for c in storage_module.STORIES_TABLE.c if c.name != "id"]
        row = storage_module.story_row(via_core, feed_id, NOW)
        connection.execute(
            insert(storage_module.STORIES_TABLE), [dict(zip(columns, row, strict=True))]
        )
    with storage.engine.connect() as connection:
        # As the database holds them: a text query's values get no type processing.
        stored = connection.execute(text("SELECT * FROM stories ORDER BY id")).mappings().all()
    assert stored[0]["id"] != stored[1]["id"]
    driver, core = ({k: v for k, v in row.items() if k != "id"} for row in stored)
    assert isinstance(driver["summary"], bytes) and isinstance(driver["published"], str | datetime)
    assert (driver.pop("uid"), core.pop("uid")) == ("uid-driver", "uid-core")
    assert (driver.pop("link_key"), core.pop("link_key")) == (
        "https://x.test/1",
        "https://x.test/2",
    )
    assert driver == core


def test_rows_updated_through_the_driver_are_stored_as_sqlalchemy_stores_them(
    database_url: str,
) -> None:
    """Feed rows are updated in groups that set the same columns, skipping SQLAlchemy's
    per-row parameters: the stored values must not differ, and columns left out stay."""
    from sqlalchemy import text, update

    from aggregator.storage.feeds import _UPDATE_FEED
    from aggregator.storage.schema import FEEDS_TABLE as feeds

    storage = open_db(database_url)
    states = storage.feed_states()
    a, b = states[A.url].feed_id, states[B.url].feed_id
    shanghai = timezone(timedelta(hours=8))
    success = {
        "last_poll": datetime(2024, 5, 1, 20, 30, 5, 1, tzinfo=shanghai),
        "etag": '"v1 \u00e9"',
        "error_count": 0,
        "active": True,
        "title": "两大 'quoted'",
        "next_check": None,
    }
    failure = {"last_error": "HTTP 500 Internal Server Error", "error_count": 3}
    with storage.engine.begin() as connection:
        connection.execute(update(feeds).values(site_link="https://kept.test/"))
        _UPDATE_FEED.run(connection, [(a, success), (b, failure)])

    def stored(feed_id: int) -> dict[str, object]:
        with storage.engine.connect() as connection:
            query = text("SELECT * FROM feeds WHERE id = :id")
            return dict(connection.execute(query, {"id": feed_id}).mappings().one())

    by_driver = {feed_id: stored(feed_id) for feed_id in (a, b)}
    assert by_driver[a]["title"] == "两大 'quoted'" and by_driver[a]["next_check"] is None
    assert by_driver[b]["error_count"] == 3 and by_driver[b]["title"] is None
    assert by_driver[a]["site_link"] == by_driver[b]["site_link"] == "https://kept.test/"
    with storage.engine.begin() as connection:
        for feed_id, values in ((a, success), (b, failure)):
            connection.execute(update(feeds).where(feeds.c.id == feed_id).values(values))
    assert {feed_id: stored(feed_id) for feed_id in (a, b)} == by_driver


def test_a_bulk_insert_must_name_every_column_with_a_default(database_url: str) -> None:
    storage = open_db(database_url)
    partial = storage_module.RowInsert(
        storage_module.POLLS_TABLE, "feed_id", "started_at", "duration"
    )
    with storage.engine.begin() as connection, pytest.raises(ValueError, match="wire_bytes"):
        partial.run(connection, [(1, NOW, 0.5)])


def test_postgresql_batches_of_two_processes_write_one_after_the_other(
    postgres: PostgresServer,
) -> None:
    """Two updates at once (cron and `run`): the second batch waits for the first to commit,
    then finds its stories, as SQLite's single writer makes it. Side by side, both stored
    the same cross-posted story and one failed a healthy feed with a duplicate key."""
    import threading

    url = postgres.new_database()
    first, second = open_db(url), open_storage(url)
    first.begin_batch()
    ingest(first, A, [entry("a1", "https://x.test/shared")])
    done: list[float] = []

    def other_update() -> None:
        second.begin_batch()
        ingest(second, B, [entry("b1", "https://x.test/shared")])
        second.commit_batch()
        done.append(time.monotonic())

    thread = threading.Thread(target=other_update)
    thread.start()
    time.sleep(0.5)
    assert not done  # still waiting for the first batch
    committed = time.monotonic()
    first.commit_batch()
    thread.join(timeout=30)
    assert done and done[0] >= committed
    (story,) = first.newest_stories(None, 10)
    assert sorted(s.feed_url for s in story.sources) == [A.url, B.url]
    first.close()
    second.close()
