"""paging.py on hand-made members: which stories go on which page, which pages a change touches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aggregator.models import DigestMember
from aggregator.paging import (
    CategoryCensus,
    DayCensus,
    DayScan,
    page_bounds,
    pages_shown,
    plan_changes,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def member(key: int, category: str | None = "tech", *, minutes: int | None = None) -> DigestMember:
    """Story `key` (ids equal keys here), published `minutes` (default: key) after T0."""
    published = T0 + timedelta(minutes=key if minutes is None else minutes)
    return DigestMember(category, key, published, key, None)


def scan(members: list[DigestMember], limit: int = 2, page_size: int = 3, **kw: object) -> DayScan:
    return DayScan(members, limit, page_size, **kw)  # type: ignore[arg-type]


def test_pages_are_counted_from_the_oldest_and_the_newest_carries_the_total() -> None:
    day = scan([member(k) for k in range(1, 8)])
    plans = list(day)
    assert [(p.number, p.first, [m.key for m in p.members], p.total) for p in plans] == [
        (1, 1, [1, 2, 3], None),
        (2, 4, [4, 5, 6], None),
        (3, 7, [7], 7),
    ]
    assert day.census["tech"] == CategoryCensus(
        count=7,
        last_key=7,
        page_keys=(1, 4, 7),
        newest=((T0 + timedelta(minutes=7), 7), (T0 + timedelta(minutes=6), 6)),
    )


def test_a_full_last_page_is_the_newest() -> None:
    plans = list(scan([member(k) for k in range(1, 7)]))
    assert [(p.number, p.total) for p in plans] == [(1, None), (2, 6)]


def test_categories_that_fit_the_day_page_get_no_pages() -> None:
    members = [member(1, "a"), member(2, "a"), member(3, "b"), member(4, "b"), member(5, "b")]
    day = scan(members, limit=2, page_size=1)
    assert [(p.category, p.number) for p in day] == [("b", 1), ("b", 2), ("b", 3)]
    assert {c: census.count for c, census in day.census.items()} == {"a": 2, "b": 3}
    # Pages completed before the category outgrew the day page are shown as well.
    assert [m.key for m in day.newest["b"]] == [5, 4]


def test_only_the_asked_categories_are_rendered_but_every_one_is_counted() -> None:
    members = [member(k, "a") for k in range(1, 5)] + [member(k, "b") for k in range(5, 9)]
    day = scan(members, render={"b"})
    assert {p.category for p in day} == {"b"}
    assert set(day.census) == {"a", "b"}


def test_newest_are_by_publication_not_arrival() -> None:
    members = [member(1, minutes=50), member(2, minutes=10), member(3, minutes=30)]
    day = scan(members, limit=2)
    list(day)
    assert [i for _, i in day.census["tech"].newest] == [1, 3]


CENSUS = CategoryCensus(
    count=7,
    last_key=70,
    page_keys=(10, 40, 70),
    newest=((T0 + timedelta(minutes=70), 70), (T0 + timedelta(minutes=60), 60)),
)


def test_new_stories_fill_the_newest_page_then_start_another() -> None:
    plan = plan_changes(CENSUS, [member(80), member(90), member(100)], limit=2, page_size=3)
    assert plan.pages == (3, 4)  # 80 and 90 join page 3; 100 starts page 4
    assert plan.census.count == 10
    assert plan.census.page_keys == (10, 40, 70, 100)
    assert plan.census.last_key == 100
    assert [i for _, i in plan.census.newest] == [100, 90]
    assert not plan.newest_unknown


def test_a_full_newest_page_is_rendered_again_when_it_stops_being_the_newest() -> None:
    full = CategoryCensus(6, 60, (10, 40), CENSUS.newest)
    assert plan_changes(full, [member(70)], limit=2, page_size=3).pages == (2, 3)


def test_a_changed_story_already_listed_touches_its_own_page_only() -> None:
    plan = plan_changes(CENSUS, [member(40, minutes=5)], limit=2, page_size=3)
    assert plan.pages == (2,)
    assert plan.census.count == 7 and plan.census.page_keys == CENSUS.page_keys


def test_a_category_outgrowing_the_day_page_gets_every_page() -> None:
    small = CategoryCensus(2, 20, (10,), ())
    plan = plan_changes(small, [member(30), member(31)], limit=2, page_size=3)
    assert plan.pages == (1, 2)
    assert plan_changes(small, [member(20)], limit=2, page_size=3).pages == ()
    assert plan_changes(None, [member(5)], limit=2, page_size=3).census.count == 1


def test_a_newest_story_made_older_means_reading_the_newest_again() -> None:
    plan = plan_changes(CENSUS, [member(70, minutes=1)], limit=2, page_size=3)
    assert plan.newest_unknown
    assert not plan_changes(CENSUS, [member(70, minutes=80)], limit=2, page_size=3).newest_unknown


def test_page_bounds() -> None:
    assert page_bounds(CENSUS, 1, 3) == (10, 40, 3)
    assert page_bounds(CENSUS, 3, 3) == (70, 71, 1)


def test_census_round_trip_and_settings_it_was_made_for() -> None:
    day = DayCensus(2, 3, "f1", {"tech": CENSUS, None: CategoryCensus(1, 5, (5,), ())})
    text = day.to_json()
    assert DayCensus.from_json(text, 2, 3, "f1") == day
    assert DayCensus.from_json(text, 2, 4, "f1") is None  # another page size
    assert DayCensus.from_json(text, 2, 3, "f2") is None  # another config
    assert DayCensus.from_json("{broken", 2, 3, "f1") is None
    assert DayCensus.from_json(None, 2, 3, "f1") is None


def test_a_category_has_pages_only_once_the_day_page_cannot_show_it_all() -> None:
    assert [pages_shown(count, 3, 2) for count in (0, 1, 3, 4, 5, 6, 7)] == [0, 0, 0, 2, 3, 3, 4]
    assert pages_shown(2, 0, 2) == 1  # a limit of 0 shows one story
