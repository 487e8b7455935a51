"""One digest day: where storage, paging and the page renderer meet.

`core.Aggregator.publish` says which days to render and with which changed
stories; a `DayPublisher` does one day:

    census kept for the day + changed stories     # storage meta, DigestReader.members_of
        → paging.plan_changes → pages to render    # no reading of the whole day
    or, without a census or with every story changed:
        DigestReader.day_members → paging.DayScan  # the day read once, in order
    → cards (made for stories without one)        # DigestReader.make_cards(…, clean.excerpt)
    → digest.render_category_page, render_day
    → after reading the whole day: digest.retire_category_pages (those it no longer fills)
    → the census for next time

Nothing here holds more than a batch of cards; the day's list never is.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from datetime import datetime

from aggregator.clean import excerpt
from aggregator.digest import render_category_page, render_day, retire_category_pages
from aggregator.models import (
    Category,
    Config,
    DigestDay,
    DigestMember,
    DigestPage,
    DigestSection,
    DigestStory,
    FeedHealth,
    WriteReport,
)
from aggregator.paging import (
    DayCensus,
    DayScan,
    PagePlan,
    page_bounds,
    pages_for,
    pages_shown,
    plan_changes,
    with_newest,
)
from aggregator.pool import Job, WorkerPool
from aggregator.storage import DigestReader, Storage

#: Digest section for stories whose feeds name no category.
UNCATEGORISED = Category(name="Other sources", slug="all")
#: Digest cards rendered (and made, when missing) at a time.
CARD_BATCH = 1000
#: storage meta key prefix: the census of a digest day (see paging.DayCensus).
CENSUS_KEY = "digest_census:"
#: Category pages a publish renders itself before it hands pages to a worker: a small
#: publish is over before a worker would be ready to write its first page.
PAGES_BEFORE_WORKER = 20


class DayPublisher:
    """One digest day: its day page, and the pages of its categories that need rendering.

    With every story changed (None) the day is read once, in order, and every
    page rendered. Otherwise the census the last publish kept for the day
    (`paging.DayCensus`, in the meta table) and the changed stories alone
    say which pages to render, and only those pages are read; without a
    census, or when it no longer matches the stories, the day is read once
    and the changed categories' pages rendered.
    """

    def __init__(
        self,
        config: Config,
        storage: Storage,
        reader: DigestReader,
        frame: DigestDay,
        bounds: tuple[datetime, datetime],
        changed_story_ids: set[int] | None,
        *,
        page_size: int,
        fingerprint: str,
        pool: WorkerPool | None = None,
    ) -> None:
        """`frame` is the day without sections (its links); `bounds` its start and end in UTC;
        `fingerprint` that of the config, which a census must have been counted for; `pool`
        where category pages are written once there are many (see PAGES_BEFORE_WORKER)."""
        self.site = config.site
        self.categories = config.categories
        self.by_name: dict[str | None, Category] = {c.name: c for c in config.categories}
        self.by_name[None] = UNCATEGORISED
        self.storage = storage
        self.reader = reader
        self.frame = frame
        self.start, self.end = bounds
        self.changed = changed_story_ids
        self.page_size = page_size
        self.limit = max(self.site.digest_per_category, 1)
        self.fingerprint = fingerprint
        self.report = WriteReport()
        self.pool = pool
        self._rendered = 0
        self._writing: deque[Job[WriteReport]] = deque()

    def publish(self, health: Sequence[FeedHealth], as_of: datetime) -> WriteReport:
        """Render the day and keep its census for the next time.

        `as_of` is when today's page last changed; a past day's page says when
        its own last story arrived, so that a later day's stories leave its
        bytes alone when it is rendered again for its "Next day" link.
        """
        if not self.frame.is_today:
            latest = self.storage.latest_first_seen(self.end)
            as_of = latest if latest is not None and latest >= self.start else as_of
        key = CENSUS_KEY + self.frame.day
        stored = self.storage.get_meta(key)
        census = None
        read_whole_day = self.changed is None
        if self.changed is None:
            census = self._read_day(None)
        else:
            changed = self.reader.members_of(self.changed, self.start, self.end)
            kept = DayCensus.from_json(stored, self.limit, self.page_size, self.fingerprint)
            if kept is not None:
                census = self._apply_changes(kept, changed)
            if census is None:
                self._count_written(wait=True)  # none may land after its second rendering
                census = self._read_day({m.category for m in changed})
                read_whole_day = True
        newest = self._cards([i for c in census.categories.values() for _, i in c.newest])
        sections = []
        for category in [*self.categories, UNCATEGORISED]:
            counted = census.categories.get(None if category is UNCATEGORISED else category.name)
            if counted is not None and counted.count:
                stories = tuple(newest[i] for _, i in counted.newest if i in newest)
                sections.append(DigestSection(category, stories, counted.count))
        day = dataclasses.replace(self.frame, sections=tuple(sections))
        self.report += render_day(self.site, self.categories, day, health, as_of)
        self._count_written(wait=True)
        if read_whole_day:
            self.report += retire_category_pages(self.site, self.frame.day, self._pages(census))
        text = census.to_json()
        if text != stored:
            self.storage.set_meta(key, text)
        return self.report

    def _pages(self, census: DayCensus) -> dict[str, int]:
        """Slug: how many pages each category of the config fills."""
        return {
            category.slug: pages_shown(counted.count, self.limit, self.page_size)
            for name, counted in census.categories.items()
            if (category := self.by_name.get(name)) is not None
        }

    def _count_written(self, *, wait: bool) -> None:
        """Count the pages the worker has written, in the order they were handed over:
        those done so far, or (`wait`) every one."""
        while self._writing and (wait or self._writing[0].done()):
            self.report += self._writing.popleft().result()

    def _read_day(self, render: set[str | None] | None) -> DayCensus:
        """Read every story of the day once; render all pages of the `render` categories."""
        scan = DayScan(
            self.reader.day_members(self.start, self.end), self.limit, self.page_size, render
        )
        self._render(scan)
        return DayCensus(self.limit, self.page_size, self.fingerprint, scan.census)

    def _apply_changes(
        self, census: DayCensus, changed: Sequence[DigestMember]
    ) -> DayCensus | None:
        """Render the pages the changed stories touch; None if the census proved stale."""
        by_category: dict[str | None, list[DigestMember]] = defaultdict(list)
        for member in changed:
            by_category[member.category].append(member)
        # Changed stories lost their cards: make them in one go, before reading their pages.
        self._make_cards([m.story_id for m in changed if m.story is None])
        counted = dict(census.categories)
        for category, members in by_category.items():
            plan = plan_changes(counted.get(category), members, self.limit, self.page_size)
            now = plan.census
            if plan.newest_unknown:
                now = with_newest(
                    now, self.reader.newest(self.start, self.end, category, self.limit)
                )
            last = pages_for(now.count, self.page_size)
            for run in _runs(plan.pages, max(CARD_BATCH // self.page_size, 1)):
                # Consecutive pages are read in one go, then split at their first keys;
                # a card batch at a time, so a category whose every page changed is
                # never held whole (it was a fifth of an update's peak memory).
                key_from, _, _ = page_bounds(now, run[0], self.page_size)
                _, key_to, _ = page_bounds(now, run[-1], self.page_size)
                members = self.reader.page_members(self.start, self.end, category, key_from, key_to)
                plans = []
                for number in run:
                    low, high, size = page_bounds(now, number, self.page_size)
                    page = tuple(m for m in members if low <= m.key < high)
                    if len(page) != size:
                        return None
                    first = (number - 1) * self.page_size + 1
                    total = now.count if number == last else None
                    plans.append(PagePlan(category, number, first, page, total))
                self._render(plans)
            counted[category] = now
        return dataclasses.replace(census, categories=counted)

    def _render(self, plans: Iterable[PagePlan]) -> None:
        """Render pages, a batch at a time, making the cards they lack on the way."""
        batch: list[PagePlan] = []
        size = 0
        for plan in plans:
            batch.append(plan)
            size += len(plan.members)
            if size >= CARD_BATCH:
                self._render_batch(batch)
                batch, size = [], 0
        self._render_batch(batch)

    def _render_batch(self, plans: Sequence[PagePlan]) -> None:
        missing = [m.story_id for plan in plans for m in plan.members if m.story is None]
        made = self._make_cards(missing) if missing else {}
        for plan in plans:
            category = self.by_name.get(plan.category)
            if category is None:
                continue
            # Pages follow the order stories arrived in; each lists its own newest first.
            members = sorted(plan.members, key=lambda m: (m.published, m.story_id), reverse=True)
            stories = tuple(m.story or made[m.story_id] for m in members)
            page = DigestPage(
                self.frame.day, category, plan.number, plan.first, stories, plan.total
            )
            self._rendered += 1
            if self.pool is None or self._rendered <= PAGES_BEFORE_WORKER:
                self.report += render_category_page(
                    self.site, self.categories, page, self.page_size
                )
            else:  # laid out here, written on the other core (or here, if it is busy)
                self._writing.append(
                    self.pool.call(
                        render_category_page, self.site, self.categories, page, self.page_size
                    )
                )
                # Counted as they are done: a job keeps its page's stories until then.
                self._count_written(wait=False)

    def _cards(self, story_ids: Sequence[int]) -> dict[int, DigestStory]:
        found = self.reader.stories(story_ids)
        missing = [i for i in story_ids if i not in found]
        return found | self._make_cards(missing) if missing else found

    def _make_cards(self, story_ids: Sequence[int]) -> dict[int, DigestStory]:
        """Cards of stories that have none yet: new or changed since the last publish."""
        made: dict[int, DigestStory] = {}
        for first in range(0, len(story_ids), CARD_BATCH):
            made |= self.reader.make_cards(story_ids[first : first + CARD_BATCH], excerpt)
        return made


def _runs(numbers: Sequence[int], longest: int) -> list[list[int]]:
    """Ascending page numbers grouped into runs of consecutive ones, `longest` at most."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and runs[-1][-1] == number - 1 and len(runs[-1]) < longest:
            runs[-1].append(number)
        else:
            runs.append([number])
    return runs
