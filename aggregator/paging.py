"""Which stories go on which digest page, and which pages a change touches. Pure.

A category's stories of a day are split into pages of `page_size`, counted
from the oldest (by the key of `storage.DigestReader`: the order in which
stories reached the category). New stories fill the newest page, then start
another, so an older page only changes when one of its own stories does.

Two ways to know the pages of a day:

- `DayScan` reads every story of the day once, in order, and yields the
  pages to render; it also counts what the day page needs (how many stories
  each category has, its newest ones) into a `DayCensus`.
- `plan_changes` starts from the census the last publish left and the
  changed stories alone, and says which pages they touch, without reading
  the day again. That is what keeps an incremental publish cheap when a day
  has tens of thousands of stories.

Both keep at most a page of stories (and a day page's worth) at a time.
"""

from __future__ import annotations

import heapq
import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from aggregator.models import DigestMember

#: A story among a category's newest of the day: (published, story id), the order of the day page.
Newest = tuple[datetime, int]

CENSUS_VERSION = 1


@dataclass(frozen=True)
class CategoryCensus:
    """A category's stories of a day as the last publish left them.

    `page_keys` holds the key of each page's oldest story, so a story's page
    is found by its key alone; `newest` are the day page's stories, newest first.
    """

    count: int
    last_key: int
    page_keys: tuple[int, ...]
    newest: tuple[Newest, ...]


@dataclass(frozen=True)
class DayCensus:
    """Every category's census for one day, and what it was counted for."""

    limit: int
    page_size: int
    fingerprint: str
    categories: Mapping[str | None, CategoryCensus] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": CENSUS_VERSION,
                "limit": self.limit,
                "page_size": self.page_size,
                "fingerprint": self.fingerprint,
                "categories": [
                    [
                        name,
                        c.count,
                        c.last_key,
                        list(c.page_keys),
                        [[p.isoformat(), i] for p, i in c.newest],
                    ]
                    for name, c in self.categories.items()
                ],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(
        cls, text: str | None, limit: int, page_size: int, fingerprint: str
    ) -> DayCensus | None:
        """The census in `text`, or None when there is none for these settings."""
        if not text:
            return None
        try:
            data = json.loads(text)
            if (data["version"], data["limit"], data["page_size"], data["fingerprint"]) != (
                CENSUS_VERSION,
                limit,
                page_size,
                fingerprint,
            ):
                return None
            categories = {
                name: CategoryCensus(
                    count,
                    last_key,
                    tuple(page_keys),
                    tuple((datetime.fromisoformat(p), i) for p, i in newest),
                )
                for name, count, last_key, page_keys, newest in data["categories"]
            }
        except (ValueError, KeyError, TypeError):
            return None
        return cls(limit, page_size, fingerprint, categories)


@dataclass(frozen=True)
class PagePlan:
    """A page to render: its number, the position of its oldest story, its stories oldest
    first, and the category's total when it is the newest page."""

    category: str | None
    number: int
    first: int
    members: tuple[DigestMember, ...]
    total: int | None = None


def pages_for(count: int, page_size: int) -> int:
    return -(-count // page_size)


def pages_shown(count: int, limit: int, page_size: int) -> int:
    """How many pages a category of `count` stories has: none while the day page shows
    all of them (its `limit` newest)."""
    return pages_for(count, page_size) if count > max(limit, 1) else 0


# --------------------------------------------------------------------------- reading a whole day


class _CategoryScan:
    def __init__(self, category: str | None, limit: int, page_size: int, render: bool) -> None:
        self.category = category
        self.limit = limit
        self.page_size = page_size
        self.render = render
        self.count = 0
        self.last_key = -1
        self.page_keys: list[int] = []
        self.heap: list[tuple[datetime, int, DigestMember]] = []
        self.page: list[DigestMember] = []
        self.held: list[PagePlan] = []  # complete pages not yet known to be shown or not newest

    def add(self, member: DigestMember) -> Iterator[PagePlan]:
        if self.count % self.page_size == 0:
            self.page_keys.append(member.key)
            if self.page:
                yield from self._complete()
        self.page.append(member)
        self.count += 1
        self.last_key = member.key
        # Story ids are unique, so entries never compare their members.
        entry = (member.published, member.story_id, member)
        if len(self.heap) < self.limit:
            heapq.heappush(self.heap, entry)
        elif entry[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, entry)

    def _complete(self) -> Iterator[PagePlan]:
        if not self.render:
            self.page = []
            return
        number = len(self.page_keys) - 1
        plan = PagePlan(self.category, number, (number - 1) * self.page_size + 1, tuple(self.page))
        self.page = []
        # Shown only when the category has more stories than the day page shows.
        self.held.append(plan)
        if self.count > self.limit:
            yield from self.held
            self.held = []

    def finish(self) -> Iterator[PagePlan]:
        if self.render and self.count > self.limit:
            yield from self.held
            number = len(self.page_keys)
            first = (number - 1) * self.page_size + 1
            yield PagePlan(self.category, number, first, tuple(self.page), self.count)

    def census(self) -> CategoryCensus:
        newest = sorted(self.heap, key=lambda e: e[:2], reverse=True)
        return CategoryCensus(
            self.count,
            self.last_key,
            tuple(self.page_keys),
            tuple((published, story_id) for published, story_id, _ in newest),
        )

    def newest_members(self) -> list[DigestMember]:
        return [m for _, _, m in sorted(self.heap, key=lambda e: e[:2], reverse=True)]


class DayScan:
    """Reads a day's members once (category by category, each oldest first).

    Iterating yields the pages to render: every page, or only those of the
    categories in `render` when given; afterwards `census` and `newest` hold
    what the day page needs.
    """

    def __init__(
        self,
        members: Iterable[DigestMember],
        limit: int,
        page_size: int,
        render: set[str | None] | None = None,
    ) -> None:
        self._members = members
        self._limit = max(limit, 1)
        self._page_size = page_size
        self._render = render
        self.census: dict[str | None, CategoryCensus] = {}
        self.newest: dict[str | None, list[DigestMember]] = {}

    def __iter__(self) -> Iterator[PagePlan]:
        scan: _CategoryScan | None = None
        for member in self._members:
            if scan is None or member.category != scan.category:
                if scan is not None:
                    yield from self._finish(scan)
                render = self._render is None or member.category in self._render
                scan = _CategoryScan(member.category, self._limit, self._page_size, render)
            yield from scan.add(member)
        if scan is not None:
            yield from self._finish(scan)

    def _finish(self, scan: _CategoryScan) -> Iterator[PagePlan]:
        yield from scan.finish()
        self.census[scan.category] = scan.census()
        self.newest[scan.category] = scan.newest_members()


# --------------------------------------------------------------------------- changes alone


@dataclass(frozen=True)
class ChangePlan:
    """What changed stories do to one category of a day."""

    census: CategoryCensus
    pages: tuple[int, ...]  # page numbers to render, oldest first
    newest_unknown: bool  # the day page's newest stories must be read again


def plan_changes(
    before: CategoryCensus | None,
    changed: Iterable[DigestMember],
    limit: int,
    page_size: int,
) -> ChangePlan:
    """The pages of one category that `changed` (its changed stories of the day) touch.

    A changed story whose key is at most the last key counted was in the list
    already and stays on its page (keys never change); one with a greater key
    is new to the category and is appended. Pages appear for every story once
    the category outgrows the day page.
    """
    limit = max(limit, 1)
    before = before or CategoryCensus(0, -1, (), ())
    changed = list(changed)
    known = [m for m in changed if m.key <= before.last_key]
    arrived = sorted((m for m in changed if m.key > before.last_key), key=lambda m: m.key)
    pages = {bisect_right(before.page_keys, m.key) for m in known}
    page_keys = list(before.page_keys)
    for offset, member in enumerate(arrived):
        position = before.count + offset
        if position % page_size == 0:
            page_keys.append(member.key)
        pages.add(position // page_size + 1)
    count = before.count + len(arrived)
    if arrived and before.count:
        pages.add(pages_for(before.count, page_size))  # no longer the newest page
    total_pages = pages_for(count, page_size)
    if count <= limit:
        pages = set()
    elif before.count <= limit:
        pages = set(range(1, total_pages + 1))  # the category's first pages of the day

    ids = {m.story_id for m in changed}
    old_newest = {i: p for p, i in before.newest}
    candidates = [(p, i) for p, i in before.newest if i not in ids]
    candidates += [(m.published, m.story_id) for m in changed]
    newest = tuple(sorted(candidates, reverse=True)[:limit])
    # A story of the day page that became older may leave room for one we did not keep.
    demoted = any(m.published < old_newest.get(m.story_id, m.published) for m in changed)
    unknown = len(newest) < min(limit, count) or (demoted and before.count > limit)
    census = CategoryCensus(
        count, max([before.last_key, *(m.key for m in arrived)]), tuple(page_keys), newest
    )
    return ChangePlan(census, tuple(sorted(p for p in pages if p >= 1)), unknown)


def with_newest(census: CategoryCensus, newest: Iterable[DigestMember]) -> CategoryCensus:
    return replace(census, newest=tuple((m.published, m.story_id) for m in newest))


def page_bounds(census: CategoryCensus, number: int, page_size: int) -> tuple[int, int, int]:
    """(first key, the key after the last, number of stories) of a page."""
    keys = census.page_keys
    if number < len(keys):
        return keys[number - 1], keys[number], page_size
    return keys[number - 1], census.last_key + 1, census.count - (number - 1) * page_size
