"""`run`: keep polling. The database says what is due; the scheduler only ticks.

APScheduler (the only module importing it) fires three jobs on one worker
thread, so they never overlap on the database:

- every `tick` seconds: poll the feeds whose next check has come, republish;
- at local midnight: roll the digest over to the new day;
- at `site.digest_time`: the daily cut, a full rebuild of every page and feed.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.core import Aggregator, UpdateReport

DEFAULT_TICK_SECONDS = 30


def run_forever(
    aggregator: Aggregator,
    *,
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    on_update: Callable[[UpdateReport], None] | None = None,
    on_publish: Callable[[str], None] | None = None,
) -> None:
    """Poll due feeds and republish until SIGINT/SIGTERM."""
    site = aggregator.config.site
    scheduler = BlockingScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        timezone=UTC,
    )

    def poll_due() -> None:
        due = aggregator.due_sources()
        if due:
            report = aggregator.update(due)
            if on_update is not None:
                on_update(report)

    def rebuild(reason: str, full: bool) -> Callable[[], None]:
        def job() -> None:
            aggregator.publish(None if full else set())
            if on_publish is not None:
                on_publish(reason)

        return job

    scheduler.add_job(
        poll_due,
        IntervalTrigger(seconds=tick_seconds, timezone=UTC),
        id="poll",
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        rebuild("day rollover", full=False),
        CronTrigger(hour=0, minute=0, timezone=site.timezone),
        id="midnight",
    )
    scheduler.add_job(
        rebuild("daily digest cut", full=True),
        CronTrigger(
            hour=site.digest_time.hour, minute=site.digest_time.minute, timezone=site.timezone
        ),
        id="digest",
    )

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
        if scheduler.running:
            # A poll under way is not waited for: the database and the
            # published files are consistent at every moment of one.
            scheduler.shutdown(wait=False)


class _Stopped(Exception):
    """SIGTERM came: raised, like Ctrl-C's KeyboardInterrupt, wherever `run` was waiting."""
