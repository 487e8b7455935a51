"""`run` follows feeds.yaml: ConfigFollower on real files and a real SQLite database."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from time import time_ns
from typing import Any

import pytest
from apscheduler.schedulers.blocking import BlockingScheduler

from aggregator.config_cache import load_config
from aggregator.core import Aggregator, make_aggregator
from aggregator.follow import ConfigEdit, ConfigFollower
from aggregator.scheduler import DIGEST, MIDNIGHT, reschedule_rollovers, rollover_triggers
from tests.conftest import write_config_file

A, B, C = "https://a.test/feed.xml", "https://b.test/feed.xml", "https://c.test/feed.xml"


_SAVES = itertools.count(1)


def _save(folder: Path, urls: list[str], **site: Any) -> Path:
    """Write feeds.yaml, a second later than the last save.

    File times move in steps of a few milliseconds, and a person saving twice
    takes longer than that; a test must say so.
    """
    path = write_config_file(folder, [{"url": url} for url in urls], **site)
    os.utime(path, ns=(time_ns(), time_ns() + next(_SAVES) * 1_000_000_000))
    return path


@pytest.fixture
def follower(tmp_path: Path) -> Iterator[ConfigFollower]:
    follower = ConfigFollower(make_aggregator(_save(tmp_path, [A, B])))
    yield follower
    follower.aggregator.close()


def _urls(aggregator: Aggregator) -> list[str]:
    return [feed.url for feed in aggregator.config.feeds]


def _due(aggregator: Aggregator) -> list[str]:
    return [feed.url for feed in aggregator.due_sources()]


def test_an_unsaved_file_is_not_read_again(follower: ConfigFollower) -> None:
    first = follower.aggregator
    assert follower.check() is None
    assert follower.check() is None
    assert follower.aggregator is first


def test_an_added_feed_is_taken_up_on_the_same_database_and_is_due_at_once(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    first = follower.aggregator
    _save(tmp_path, [A, B, C])
    assert follower.check() == ConfigEdit(added=(C,), reshapes_outputs=True)
    assert follower.aggregator is not first
    assert follower.aggregator.storage is first.storage
    assert _urls(follower.aggregator) == [A, B, C]
    assert C in _due(follower.aggregator)


def test_a_removed_feed_is_no_longer_polled(follower: ConfigFollower, tmp_path: Path) -> None:
    _save(tmp_path, [B])
    assert follower.check() == ConfigEdit(removed=(A,), reshapes_outputs=True)
    assert _due(follower.aggregator) == [B]
    assert A not in [health.url for health in follower.aggregator.storage.health()]


def test_an_edit_of_poll_settings_alone_leaves_the_outputs_as_they_are(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    _save(tmp_path, [A, B], interval="5m")
    assert follower.check() == ConfigEdit(reshapes_outputs=False)
    assert follower.aggregator.config.site.interval.total_seconds() == 300
    _save(tmp_path, [A, B], interval="5m", title="Renamed digest")
    assert follower.check() == ConfigEdit(reshapes_outputs=True)


def test_a_file_saved_unchanged_is_no_edit(follower: ConfigFollower, tmp_path: Path) -> None:
    first = follower.aggregator
    _save(tmp_path, [A, B])
    assert follower.check() is None
    assert follower.aggregator is first


def test_an_invalid_edit_is_reported_where_it_is_and_changes_nothing_until_put_right(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    first = follower.aggregator
    path = _save(tmp_path, [A, B, "not a url"])
    edit = follower.check()
    assert edit is not None and not edit.accepted
    (problem,) = edit.problems
    assert problem.file == str(path) and problem.line is not None and "feeds[2]" in problem.key
    assert follower.aggregator is first and _urls(first) == [A, B]
    assert follower.check() is None  # reported once, not on every tick

    _save(tmp_path, [A, B])  # put back as it was: said so, and still the same feeds
    assert follower.check() == ConfigEdit()
    assert follower.aggregator is first

    _save(tmp_path, [A, C])
    assert follower.check() == ConfigEdit(added=(C,), removed=(B,), reshapes_outputs=True)


def test_a_file_that_is_gone_for_a_while_is_refused_then_taken_back(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    first = follower.aggregator
    path = first.config.path
    moved = path.with_name("elsewhere.yaml")
    path.rename(moved)
    edit = follower.check()
    assert edit is not None and [p.message for p in edit.problems] == ["file not found"]
    assert follower.check() is None
    moved.rename(path)
    os.utime(path)
    assert follower.check() == ConfigEdit()
    assert follower.aggregator is first


def test_an_edit_that_moves_the_database_opens_the_new_one(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    first = follower.aggregator
    _save(tmp_path, [A, B], database="sqlite:///var/moved.db")
    assert follower.check() == ConfigEdit()
    assert follower.aggregator.storage is not first.storage
    assert (tmp_path / "var" / "moved.db").exists()
    assert sorted(_due(follower.aggregator)) == [A, B]


def test_an_edit_whose_database_cannot_be_opened_yet_is_taken_up_once_it_can(
    follower: ConfigFollower, tmp_path: Path
) -> None:
    """Nothing in the file needs fixing, so no save will come: the edit is
    tried again at every check, and said once until its reason changes."""
    first = follower.aggregator
    (tmp_path / "later").write_text("a file where the database's folder must go")
    _save(tmp_path, [A, B, C], database="sqlite:///later/moved.db")
    edit = follower.check()
    assert edit is not None and not edit.accepted
    (problem,) = edit.problems
    assert problem.key == "site.database"
    assert follower.aggregator is first and _urls(first) == [A, B]
    assert follower.check() is None  # tried again, said once
    assert follower.aggregator is first

    (tmp_path / "later").unlink()  # the folder can be made now
    assert follower.check() == ConfigEdit(added=(C,), reshapes_outputs=True)
    assert (tmp_path / "later" / "moved.db").exists()
    assert _urls(follower.aggregator) == [A, B, C]
    assert follower.check() is None


def test_an_edited_time_zone_and_digest_time_move_the_rollover_jobs(tmp_path: Path) -> None:
    aggregator = make_aggregator(_save(tmp_path, [A], timezone="UTC", digest_time="07:00"))
    scheduler = BlockingScheduler(timezone="UTC")
    try:
        for job_id, trigger in rollover_triggers(aggregator.config.site).items():
            scheduler.add_job(print, trigger, id=job_id)
        edited = load_config(_save(tmp_path, [A], timezone="Asia/Tokyo", digest_time="06:30"))
        assert edited.site.digest_time == time(6, 30)
        reschedule_rollovers(scheduler, edited.site)
        digest, midnight = scheduler.get_job(DIGEST).trigger, scheduler.get_job(MIDNIGHT).trigger
        assert str(digest.timezone) == str(midnight.timezone) == "Asia/Tokyo"
        assert _hour_and_minute(digest) == ("6", "30")
        assert _hour_and_minute(midnight) == ("0", "0")
    finally:
        aggregator.close()


def _hour_and_minute(trigger: Any) -> tuple[str, str]:
    fields = {field.name: str(field) for field in trigger.fields}
    return fields["hour"], fields["minute"]
