"""`run`: keep polling. The database says what is due; the scheduler only ticks.

APScheduler (the only module importing it) fires three jobs on one worker
thread, so they never overlap on the database:

- every `tick` seconds: take up an edited feeds.yaml (follow.py), poll the
  feeds whose next check has come, republish;
- at local midnight: roll the digest over to the new day;
- at `site.digest_time`: the daily cut, a full rebuild of every page and feed.

Stopped (SIGINT, SIGTERM), it lets the job under way wrap up first: a poll
ends at its next feed and keeps what it stored.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.core import UpdateReport
from aggregator.errors import AggregatorError
from aggregator.follow import ConfigEdit, ConfigFollower
from aggregator.models import SiteSettings, WriteReport

log = logging.getLogger(__name__)

DEFAULT_TICK_SECONDS = 30
#: How long a stopping `run` waits for the poll or publish under way to wrap up.
STOP_GRACE_SECONDS = 30


def run_forever(
    follower: ConfigFollower,
    *,
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    on_update: Callable[[UpdateReport], None] | None = None,
    on_publish: Callable[[str, WriteReport], None] | None = None,
    on_edit: Callable[[ConfigEdit], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
    on_recovery: Callable[[], None] | None = None,
) -> None:
    """Poll due feeds and republish until SIGINT/SIGTERM, following edits of feeds.yaml.

    A job that fails for a reason outside the program (AggregatorError: the
    database unreachable, say; OSError: a disk full, an output folder made
    read-only) is tried again at its next time; `on_failure` hears the
    reason once, until it changes, and `on_recovery` hears when a job
    succeeds again. Any other exception is a bug, and goes to the log.
    """
    if not logging.getLogger().isEnabledFor(logging.INFO):
        # A poll still under way at the next tick is skipped, as meant
        # (max_instances), and APScheduler warns of every skip: a slow feed
        # filled the terminal with them. Its errors still show; -v shows all.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        timezone=UTC,
    )
    stopping = threading.Event()
    busy = threading.Lock()  # held by the job under way, so that stopping can wait for it
    failing: str | None = None  # why the last job failed, while jobs fail

    def one_at_a_time(work: Callable[[], None]) -> Callable[[], None]:
        def job() -> None:
            nonlocal failing
            with busy:
                if stopping.is_set():
                    return
                try:
                    work()
                except (AggregatorError, OSError) as error:
                    log.info("a job failed; tried again at its next time", exc_info=True)
                    if str(error) != failing and on_failure is not None:
                        on_failure(str(error))
                    failing = str(error)
                    return
                if failing is not None and on_recovery is not None:
                    on_recovery()
                failing = None

        return job

    def poll_due() -> None:
        edit = follower.check()
        aggregator = follower.aggregator
        if edit is not None:
            if on_edit is not None:
                on_edit(edit)
            if edit.accepted:
                reschedule_rollovers(scheduler, aggregator.config.site)
        due = aggregator.due_sources()
        if due:
            # Publishes, everything if the edit asks for it; stopping ends it early.
            report = aggregator.update(due, stop=stopping)
            if on_update is not None and (report.results or not report.stopped):
                on_update(report)  # a poll stopped before any feed came back says nothing
            if report.publish_error is not None:
                raise report.publish_error  # said once, tried again at the next check
        elif edit is not None and edit.reshapes_outputs:
            # A feed removed or renamed, a category changed: nothing is due,
            # but the outputs no longer match the config.
            rebuild("feeds.yaml edited", full=False)()

    def rebuild(reason: str, full: bool) -> Callable[[], None]:
        def job() -> None:
            published = follower.aggregator.publish(None if full else set())
            if on_publish is not None:
                on_publish(reason, published)

        return job

    scheduler.add_job(
        one_at_a_time(poll_due),
        IntervalTrigger(seconds=tick_seconds, timezone=UTC),
        id="poll",
        next_run_time=datetime.now(UTC),
    )
    triggers = rollover_triggers(follower.aggregator.config.site)
    rollover, cut = rebuild("day rollover", full=False), rebuild("daily digest cut", full=True)
    scheduler.add_job(one_at_a_time(rollover), triggers[MIDNIGHT], id=MIDNIGHT)
    scheduler.add_job(one_at_a_time(cut), triggers[DIGEST], id=DIGEST)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # SIGTERM often comes more than once: `make run` passes its own on to
        # this process beside the one sent to the whole process group, and a
        # service manager may repeat it. Only the first may stop the process;
        # a repeat acted on would break off the stopping (closing the database,
        # reaping the worker) wherever it had got to.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Stopped

    signal.signal(signal.SIGTERM, stop)
    try:
        with contextlib.suppress(_Stopped, KeyboardInterrupt, SystemExit):
            scheduler.start()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stopped by Ctrl-C: the same
        # A poll under way ends at its next feed and commits what it stored,
        # which would otherwise be polled again; a publish under way finishes.
        # Waited for a while, not for ever (the database and the published
        # files are consistent at every moment anyway), and a second Ctrl-C
        # stops the waiting.
        stopping.set()
        with contextlib.suppress(KeyboardInterrupt):
            busy.acquire(timeout=STOP_GRACE_SECONDS)
        if scheduler.running:
            scheduler.shutdown(wait=False)


MIDNIGHT, DIGEST = "midnight", "digest"


def rollover_triggers(site: SiteSettings) -> dict[str, CronTrigger]:
    """When the digest rolls over to a new day, and when the daily cut is, in the site's zone."""
    zone, cut = site.timezone, site.digest_time
    return {
        MIDNIGHT: CronTrigger(hour=0, minute=0, timezone=zone),
        DIGEST: CronTrigger(hour=cut.hour, minute=cut.minute, timezone=zone),
    }


def reschedule_rollovers(scheduler: BaseScheduler, site: SiteSettings) -> None:
    """Put the rollover jobs at an edited config's time zone and digest time.

    Unchanged times come out at the same next run: a cron trigger counts from now.
    """
    for job_id, trigger in rollover_triggers(site).items():
        scheduler.reschedule_job(job_id, trigger=trigger)


class _Stopped(Exception):
    """SIGTERM came: raised, like Ctrl-C's KeyboardInterrupt, wherever `run` was waiting."""
