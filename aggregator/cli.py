"""The `aggregator` command: thin wrappers over `core.Aggregator`.

Exit codes scripts can rely on: 0 everything succeeded; 1 some feeds failed
(the rest were stored and published); 2 invalid config or usage; 3 the
database, the output folder or standard output could not be used; 130
interrupted (Ctrl-C). `run` ends with 0 when stopped (Ctrl-C or SIGTERM is
how a service ends); a reader that stops reading our output ends a command
quietly with click's 1.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from aggregator import __version__
from aggregator.core import (
    Aggregator,
    FeedResult,
    StatusReport,
    UpdateReport,
    make_aggregator,
)
from aggregator.errors import AggregatorError, ConfigError
from aggregator.models import POST_FORMATS, FeedHealth, WriteReport

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from aggregator.follow import ConfigEdit

EXIT_OK, EXIT_FEEDS_FAILED, EXIT_USAGE, EXIT_FATAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LOG_WIDTH = 160


# rich is imported only for what needs it (tables, colours, the progress bar):
# a cron job's quiet poll prints two plain lines, and rich took a twentieth
# of such a run to import.
@cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH  # logs and pipes: wide rows beat wrapped cells
    return console


def out() -> Console:
    return _console(False)


def err() -> Console:
    return _console(True)


def say(text: str) -> None:
    """A plain line on standard output, exactly as given."""
    click.echo(text)


class CliState:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path


@contextmanager
def opened(state: CliState) -> Iterator[Aggregator]:
    """Open the aggregator, turning config and storage problems into exit codes."""
    try:
        aggregator = make_aggregator(state.config_path)
    except ConfigError as e:
        err().print(f"[bold red]Invalid configuration[/] ({len(e.problems)} problem(s)):")
        for problem in e.problems:
            err().print(f"  {problem}", markup=False)
        if any(problem.key == "(file)" for problem in e.problems):
            err().print("Name the file with --config FILE or $AGGREGATOR_CONFIG.")
        err().print("Nothing was run.")
        sys.exit(EXIT_USAGE)
    except AggregatorError as e:
        _print_error(e)
        sys.exit(EXIT_FATAL)
    try:
        yield aggregator
    except BrokenPipeError:
        raise  # whoever read our output left (`| head`): click ends the command quietly
    except (AggregatorError, OSError) as e:  # the database lost, the output folder unwritable
        _print_error(e)
        sys.exit(EXIT_FATAL)
    except KeyboardInterrupt:
        # Each feed is stored in its own transaction: what finished is kept.
        err().print("Interrupted; feeds polled so far are stored.")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        aggregator.close()


def _print_error(error: Exception) -> None:
    """`Error: …` in red, the error's own text as it is: paths and server messages
    may hold square brackets, which rich would otherwise read as its markup."""
    from rich.markup import escape

    err().print(f"[bold red]Error:[/] {escape(str(error))}")


def _cells(*values: str) -> list[Text]:
    """Table cells shown as they are: feed titles, URLs and server messages come from
    the feeds, and a `[/]` in one made rich raise instead of printing the table."""
    from rich.text import Text

    return [Text(value) for value in values]


def _default_config() -> str:
    # Set but empty (`AGGREGATOR_CONFIG= aggregator status`) is as if unset.
    return os.environ.get("AGGREGATOR_CONFIG") or "feeds.yaml"


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n\b\n  aggregator --config feeds.yaml update\n  aggregator status --json",
)
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=_default_config,
    show_default="./feeds.yaml or $AGGREGATOR_CONFIG",
    help="The feeds.yaml to use.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
@click.version_option(__version__, prog_name="aggregator")
@click.pass_context
def main(ctx: click.Context, config_path: Path, verbose: bool) -> None:
    """Poll the feeds of feeds.yaml, deduplicate their entries and publish
    merged per-category feeds (Atom, RSS, JSON Feed) and a daily digest page."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = CliState(config_path)


# ------------------------------------------------------------------------- update


def _result_text(result: FeedResult) -> str:
    outcome = result.outcome
    if outcome.error:
        return "error"
    if outcome.not_modified:
        return "not modified"
    return "ok"


@contextmanager
def _progress(total: int, verb: str = "Polling") -> Iterator[Any]:
    """A progress bar on a terminal; nothing when output goes to a file or pipe."""
    if total == 0 or not sys.stderr.isatty() or not err().is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn(f"[bold]{verb}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),  # a feed's name, or a file's
        console=err(),
        transient=True,
    ) as progress:
        yield progress


@contextmanager
def _first_ctrl_c_stops() -> Iterator[threading.Event]:
    """An event that the first Ctrl-C sets, for a poll to end at its next feed; a second
    Ctrl-C interrupts at once.

    A KeyboardInterrupt raised at a random moment of a poll went wrong more often
    than not: inside nh3's callback, which swallows it (the update went on
    to the end); inside the database driver, which SQLAlchemy wraps in an
    error of its own (recorded against that feed as an internal error, and
    the poll went on). Setting an event instead lets the poll commit what it
    stored and stop where `run` stops.
    """
    stop = threading.Event()

    def first(_signum: int, _frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        # Once stopping, what is left (the summary, closing the database) takes
        # moments, and a Ctrl-C pressed again meanwhile would only break it off.
        signal.signal(signal.SIGINT, signal.SIG_IGN if stop.is_set() else previous)


#: Rows for feeds that only brought entries, at most; failures and warnings always get one.
MAX_NEWS_ROWS = 100


def _summary_rows(
    report: UpdateReport, every_feed: bool, lister: str = "--every-feed"
) -> tuple[list[FeedResult], str]:
    """The feeds that get a row, and what the count line says of the others.

    A table of a thousand "not modified" rows is noise in a cron mail, and so
    is one of a thousand "1 new" rows after a first poll (rich took longer to
    lay it out than the poll's own storing): failures and warnings always get
    a row, feeds that brought entries while there are at most MAX_NEWS_ROWS.
    `lister` is what the count line names as the way to see the others.
    """
    if every_feed:
        return list(report.results), ""
    troubled = [r for r in report.results if r.outcome.error or r.outcome.warning]
    news = [
        r
        for r in report.results
        if not (r.outcome.error or r.outcome.warning) and (r.outcome.new or r.outcome.updated)
    ]
    quiet = len(report.results) - len(troubled) - len(news)
    unlisted = []
    if len(news) > MAX_NEWS_ROWS:
        unlisted.append(f"{len(news)} feeds that brought entries")
        news = []
    if quiet:
        unlisted.append(f"{quiet} feeds with nothing new")
    note = f" ({' and '.join(unlisted)} not listed; {lister} lists them)" if unlisted else ""
    return troubled + news, note


def _print_update_summary(
    report: UpdateReport, output_dir: Path, every_feed: bool, lister: str = "--every-feed"
) -> None:
    shown, unlisted = _summary_rows(report, every_feed, lister)
    if shown:
        from rich.table import Table

        table = Table(title="Poll results", show_lines=False, expand=False)
        for column in ("feed", "result", "new", "updated", "HTTP", "time", "error / warning"):
            table.add_column(column, overflow="fold")
        for r in sorted(shown, key=lambda r: (r.ok, r.name.lower())):
            o = r.outcome
            style = "red" if o.error else ("yellow" if o.warning else "")
            table.add_row(
                *_cells(
                    r.name,
                    _result_text(r),
                    str(o.new),
                    str(o.updated),
                    str(o.http_status or "-"),
                    f"{o.duration:.1f}s",
                    o.error or o.warning or "",
                ),
                style=style,
            )
        out().print(table)
    new = sum(r.outcome.new for r in report.results)
    updated = sum(r.outcome.updated for r in report.results)
    failed = len(report.failed)
    skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
    say(
        f"{len(report.results)} feeds: {len(report.results) - failed} ok, {failed} failed"
        f"{skipped}; {new} new and {updated} updated entries; "
        f"{len(report.published.written)} output files written, "
        f"{len(report.published.unchanged)} unchanged{_removed(report.published)}.{unlisted}"
    )
    _list_removed(report.published)
    if report.stopped:
        say("Stopped before the other feeds; the next run or update publishes what was stored.")
    for name, reason in report.skipped:
        say(f"Skipped {name}: {reason}")
    say(f"Digest: {output_dir / 'index.html'}")


@main.command(
    epilog="Example:\n\n\b\n  aggregator --config feeds.yaml update\n"
    "  aggregator update --force\n  aggregator update --every-feed"
)
@click.option(
    "--every-feed",
    is_flag=True,
    help="List every polled feed, not only those that failed, warned or brought entries.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Also poll feeds that are gone (HTTP 410) or whose server asked us to wait (Retry-After).",
)
@click.pass_obj
def update(state: CliState, force: bool, every_feed: bool) -> None:
    """Poll every feed now, store new entries and republish.

    Feeds whose server said they are gone (410) or asked us to wait
    (Retry-After on 429/503) are skipped and listed, unless --force. Exits 0
    when every polled feed succeeded, 1 when some failed (the others are still
    stored and published), 2 on an invalid config, 130 when Ctrl-C stopped it:
    the first Ctrl-C ends the poll at the feeds under way and keeps what they
    brought, a second one stops at once.
    """
    with opened(state) as aggregator:
        sources = aggregator.config.feeds
        with _progress(len(sources)) as progress, _first_ctrl_c_stops() as stop:
            task = progress.add_task("", total=len(sources)) if progress else None

            def advance(result: FeedResult) -> None:
                if progress is not None:
                    shown = STOPPING if stop.is_set() else result.name[:40]
                    progress.update(task, advance=1, description=shown)

            report = aggregator.update(on_result=advance, force=force, stop=stop)
        _print_update_summary(report, aggregator.config.site.output_dir, every_feed)
        if report.publish_error is not None:
            raise report.publish_error  # after the summary: the poll itself went well
    if report.stopped:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_FEEDS_FAILED if report.failed else EXIT_OK)


#: The progress bar's words once Ctrl-C has been pressed.
STOPPING = "stopping after the feeds under way (Ctrl-C again: at once)"


# ------------------------------------------------------------------------- build


def _removed(report: WriteReport) -> str:
    """The summary's ", 3 removed" when a publish deleted the feeds of gone categories."""
    return f", {len(report.removed)} removed" if report.removed else ""


def _list_removed(report: WriteReport) -> None:
    for path in report.removed:
        say(f"Removed {path}: its category is no longer in the config.")


def _print_write_report(report: WriteReport) -> None:
    say(
        f"{len(report.written)} files written, {len(report.unchanged)} unchanged{_removed(report)}."
    )
    _list_removed(report)


@main.command(epilog="Example:\n\n\b\n  aggregator build")
@click.pass_obj
def build(state: CliState) -> None:
    """Regenerate every output feed and digest page from the database, without polling.

    The feeds of a category no longer in the config are deleted, and listed.
    """
    with opened(state) as aggregator:
        report = aggregator.publish(None)
        _print_write_report(report)
        say(f"Digest: {aggregator.config.site.output_dir / 'index.html'}")


# ------------------------------------------------------------------------- export-posts


def _category_name(aggregator: Aggregator, wanted: str | None) -> str | None:
    """A category given by name or slug, as its name; a usage error if there is none."""
    if wanted is None:
        return None
    for category in aggregator.config.categories:
        if wanted in (category.name, category.slug):
            return category.name
    known = ", ".join(c.name for c in aggregator.config.categories) or "none are configured"
    raise click.BadParameter(
        f"no category {wanted!r} (categories: {known})", param_hint="--category"
    )


@main.command(
    "export-posts",
    epilog="Examples:\n\n\b\n"
    "  aggregator export-posts ~/blog/source/_posts --raw\n"
    "  aggregator export-posts ~/site/content/posts --format hugo --since 2026-01-01\n"
    "  aggregator export-posts ~/site/_posts --format jekyll --category python",
)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "post_format",
    type=click.Choice(POST_FORMATS),
    default=None,
    help="Front-matter style.  [default: site.posts_format, else hexo]",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="Only entries published on or after this day (in site.timezone).",
)
@click.option(
    "--category", metavar="NAME", help="Only entries of this category (its name or slug)."
)
@click.option(
    "--raw/--sanitised",
    default=None,
    help="Keep each body as its feed gave it (images get no-referrer), or sanitise it.  "
    "[default: site.posts_raw, else sanitised]",
)
@click.pass_obj
def export_posts(
    state: CliState,
    directory: Path,
    post_format: str | None,
    since: datetime | None,
    category: str | None,
    raw: bool | None,
) -> None:
    """Write every stored entry to DIRECTORY as a Markdown post with front matter.

    One file per entry, named by its local publication day, a slug of its title
    and a key of its own (2026-11-25-some-title-k3j5xq2m4a.md), so the same entry
    always lands in the same file. Files are written atomically and only when
    the entry changed; other files in DIRECTORY are never touched. Prints how
    many posts were written and how many were already up to date.
    """
    from aggregator.posts import PostOptions

    with opened(state) as aggregator:
        site = aggregator.config.site
        options = PostOptions(
            format=post_format or site.posts_format,
            raw=site.posts_raw if raw is None else raw,
        )
        name = _category_name(aggregator, category)
        with _progress(1, "Exporting") as progress:
            task = progress.add_task("", total=None) if progress else None

            def total(count: int) -> None:
                if progress is not None:
                    progress.update(task, total=count)

            def advance(path: Path, _changed: bool) -> None:
                if progress is not None:
                    progress.update(task, advance=1, description=path.name[:40])

            report = aggregator.export_posts(
                directory,
                options,
                category=name,
                since=since.date() if since else None,
                on_total=total,
                on_written=advance,
            )
        say(
            f"{len(report.written)} posts written, {len(report.unchanged)} unchanged "
            f"({options.format}, {'raw' if options.raw else 'sanitised'} HTML) in {directory}"
        )


# ------------------------------------------------------------------------- run

#: The longest `run --tick`: a day (the scheduler cannot count in infinities).
MAX_TICK_SECONDS = 86400


def _finite(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """A usage error for nan, which passes every range check."""
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds")
    return value


@main.command(epilog="Example:\n\n\b\n  aggregator --config feeds.yaml run --tick 30")
@click.option(
    "--tick",
    type=click.FloatRange(min=1, max=MAX_TICK_SECONDS),
    callback=_finite,
    default=30,
    show_default=True,
    help="Seconds between checks for feeds that are due and for edits of the config file.",
)
@click.pass_obj
def run(state: CliState, tick: float) -> None:
    """Keep polling each feed at its interval and republish after changes.

    Publishes right away, polls every feed that is due, then keeps going
    until interrupted (Ctrl-C or SIGTERM, exit status 0). A poll under way
    then ends at its next feed and keeps what it stored; the next run or
    update publishes it. An edit of the config file is taken up at the next
    check: new feeds are polled at once, removed ones leave the outputs, and
    an invalid edit is reported and changes nothing.
    """
    from aggregator.follow import ConfigFollower
    from aggregator.scheduler import run_forever

    with opened(state) as aggregator:
        site = aggregator.config.site
        aggregator.publish(None)
        say(
            f"Publishing to {site.output_dir} (served at {site.base_url}); "
            f"digest: {site.output_dir / 'index.html'}. Ctrl-C stops."
        )
        follower = ConfigFollower(aggregator)

        def report(update_report: UpdateReport) -> None:
            output_dir = follower.aggregator.config.site.output_dir
            # `run` has no --every-feed: `status` is where every feed is shown.
            _print_update_summary(
                update_report, output_dir, every_feed=False, lister="`aggregator status`"
            )

        def published(reason: str, written: WriteReport) -> None:
            say(f"{_now()} republished ({reason})")
            _list_removed(written)

        def edited(edit: ConfigEdit) -> None:
            _print_config_edit(edit, state.config_path)

        def failed(reason: str) -> None:
            said = reason.rstrip(".")
            err().print(
                f"{_now()} Error: {said}. Trying again at every check (-v logs each time).",
                markup=False,
            )

        def recovered() -> None:
            err().print(f"{_now()} Working again.", markup=False)

        try:
            run_forever(
                follower,
                tick_seconds=tick,
                on_update=report,
                on_publish=published,
                on_edit=edited,
                on_failure=failed,
                on_recovery=recovered,
            )
        finally:
            follower.aggregator.close()  # the one the last edit opened, if it moved the database


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def _print_config_edit(edit: ConfigEdit, path: Path) -> None:
    if not edit.accepted:
        err().print(
            f"{_now()} {path} was edited and is now invalid "
            f"({len(edit.problems)} problem(s)); still using it as it was before:",
            style="bold red",
            markup=False,
        )
        for problem in edit.problems:
            err().print(f"  {problem}", markup=False)
        return
    changes = [f"{len(edit.added)} feed(s) added"] if edit.added else []
    changes += [f"{len(edit.removed)} removed"] if edit.removed else []
    say(f"{_now()} {path} was edited: now in use ({', '.join(changes) or 'same feeds'}).")
    for url in edit.added:
        say(f"  + {url}")
    for url in edit.removed:
        say(f"  - {url}")


# ------------------------------------------------------------------------- status


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _health_json(health: FeedHealth) -> dict[str, Any]:
    return {
        "url": health.url,
        "name": health.name,
        "state": health.state,
        "last_poll": _iso(health.last_poll),
        "http_status": health.http_status,
        "last_error": health.last_error,
        "entries": health.entries,
        "next_check": _iso(health.next_check),
        "last_warning": health.last_warning,
        "retry_after": _iso(health.not_before),
        "moved_to": health.moved_to,
    }


@main.command(epilog="Example:\n\n\b\n  aggregator status\n  aggregator status --json | jq .")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def status(state: CliState, as_json: bool) -> None:
    """Show every feed's state, last poll, HTTP status, last error and entry count."""
    with opened(state) as aggregator:  # printed inside: a full disk under stdout exits 3
        report = aggregator.status()
        if as_json:
            document = {
                "entries_total": report.entries_total,
                "feeds": [_health_json(h) for h in report.feeds],
            }
            click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        else:
            _print_status_table(report, aggregator.zone)


def _print_status_table(report: StatusReport, zone: tzinfo) -> None:
    from rich.table import Table

    table = Table(title=f"{len(report.feeds)} feeds, {report.entries_total} entries")
    for column in ("name", "url", "state", "last poll", "HTTP", "entries", "last error"):
        table.add_column(column, overflow="fold")
    for h in report.feeds:
        table.add_row(
            *_cells(
                h.name,
                f"{h.url} → {h.moved_to} (moved permanently)" if h.moved_to else h.url,
                h.state,
                h.last_poll.astimezone(zone).strftime("%Y-%m-%d %H:%M") if h.last_poll else "never",
                str(h.http_status or "-"),
                str(h.entries),
                h.last_error or "",
            ),
            style="red" if h.state in ("error", "gone") else "",
        )
    out().print(table)


# ------------------------------------------------------------------------- the process


def invoke(args: Sequence[str] | None = None) -> int:
    """Run one `aggregator ARGS...` command in this process; its exit code."""
    try:
        main.main(args=args, prog_name="aggregator")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)  # what sys.exit("text") would have printed
        return 1
    return 0


def exit_now(code: int) -> NoReturn:
    """End the process at once, its output flushed, without the interpreter's teardown.

    Teardown frees every object the run made, one at a time, and runs nothing
    a finished command needs: by the time a command returns, its database is
    closed, its reading worker reaped and its files renamed into place. It
    took a tenth of a second after a poll where every feed answered 304, and
    a fifth after a first poll of a thousand feeds, in a process a cron job
    starts every few minutes.
    """
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # nobody is reading any more
    except (OSError, ValueError) as e:  # a full disk: what was printed is lost
        with suppress(OSError, ValueError):
            sys.stderr.write(f"Error: cannot write standard output: {e}\n")
        code = code or EXIT_FATAL
    with suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def entry() -> NoReturn:
    """Run the command line this process was started with, then end the process.

    `launch.entry` calls it once the program is imported.
    """
    exit_now(invoke())
