"""The command line as a user meets it: help, the example config, `run` as a process."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from aggregator.cli import MAX_NEWS_ROWS, _summary_rows, main
from aggregator.config import load_config
from aggregator.core import FeedResult, UpdateReport
from aggregator.models import PollOutcome
from aggregator.storage import UNPUBLISHED_KEY
from tests.conftest import ConfigWriter
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, Request, Server, closed_port_url, drip, serve
from tests.postgres import postgres_server

Cli = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command", [[], ["update"], ["build"], ["run"], ["status"], ["export-posts"]]
)
def test_every_command_has_help_with_an_example(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output
    assert "aggregator" in result.output.split("Example", 1)[1]


def test_every_command_is_covered_by_the_help_test() -> None:
    assert set(main.commands) == {"update", "build", "run", "status", "export-posts"}


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    assert cli("frobnicate").exit_code == 2


@pytest.mark.parametrize("tick", ["nan", "inf", "1e12", "0.5", "-3"])
def test_a_tick_the_scheduler_cannot_keep_is_a_usage_error(
    write_config: ConfigWriter, cli: Cli, tick: str
) -> None:
    result = cli("--config", str(write_config([])), "run", "--tick", tick)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--tick'" in result.output


def _aggregator(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Any = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """`aggregator ARGS...` in a process of its own, run to its end, its stderr kept."""
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        env=env,
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_config_is_reported_with_exit_2(tmp_path: Path, cli: Cli) -> None:
    result = cli("--config", str(tmp_path / "nope.yaml"), "status")
    assert result.exit_code == 2
    assert "nope.yaml" in result.output
    assert "--config FILE or $AGGREGATOR_CONFIG" in result.output


def test_a_missing_default_config_says_where_it_was_looked_for(tmp_path: Path) -> None:
    without = {k: v for k, v in os.environ.items() if k != "AGGREGATOR_CONFIG"}
    done = _aggregator("status", env=without, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"file not found (looked for {tmp_path / 'feeds.yaml'})" in done.stderr
    assert "--config FILE or $AGGREGATOR_CONFIG" in done.stderr


def test_a_database_whose_folder_cannot_be_made_exits_3_with_its_reason(
    write_config: ConfigWriter, cli: Cli
) -> None:
    # Square brackets in the path are printed too, not taken for markup.
    config = write_config([], database="sqlite:///var/blocked[draft]/aggregator.db")
    (config.parent / "var").mkdir()
    (config.parent / "var" / "blocked[draft]").write_text("a file where the folder must go")
    result = cli("--config", str(config), "status")
    assert result.exit_code == 3, result.output
    assert "cannot open database" in result.output and "File exists" in result.output
    assert "blocked[draft]'" in result.output


def test_config_from_environment(write_config: ConfigWriter, tmp_path: Path) -> None:
    config = write_config([])
    done = _aggregator("status", "--json", env={**os.environ, "AGGREGATOR_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"entries_total": 0, "feeds": []}
    # Set but empty, it is as if unset: ./feeds.yaml.
    done = _aggregator(
        "status", "--json", env={**os.environ, "AGGREGATOR_CONFIG": ""}, cwd=config.parent
    )
    assert done.returncode == 0, done.stderr


def test_the_process_exits_with_its_code_and_every_line_it_printed(
    write_config: ConfigWriter,
) -> None:
    """The command ends without the interpreter's teardown: what it printed must still
    all arrive, through a pipe, with the exit code scripts rely on."""
    good = rss("Good", [Item("A story", "https://good.test/1")])
    with serve({"/good": Reply(body=good, headers={"Content-Type": "application/rss+xml"})}) as s:
        config = write_config(
            [{"url": s.url("/good"), "name": "Good"}, {"url": closed_port_url(), "name": "Off"}]
        )
        command = [sys.executable, "-m", "aggregator", "--config", str(config)]
        # Buffered, as output to a pipe is unless the environment says otherwise.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        update = subprocess.run(
            [*command, "update"], capture_output=True, text=True, timeout=60, check=False, env=env
        )
    assert update.returncode == 1, update.stderr
    lines = update.stdout.splitlines()
    assert "2 feeds: 1 ok, 1 failed; 1 new and 0 updated entries" in update.stdout
    assert lines[-1] == f"Digest: {config.parent / 'var' / 'public' / 'index.html'}"
    status = subprocess.run(
        [*command, "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    assert [f["state"] for f in json.loads(status.stdout)["feeds"]] == ["ok", "error"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (not Linux)")
def test_a_full_disk_under_standard_output_is_an_error_not_a_traceback(
    write_config: ConfigWriter,
) -> None:
    config = write_config([{"url": closed_port_url(), "name": "Offline"}])
    with open("/dev/full", "w") as full:
        for command in (["status", "--json"], ["status"]):
            done = _aggregator("--config", str(config), *command, stdout=full)
            assert done.returncode == 3, done.stderr
            assert "Traceback" not in done.stderr
            assert "No space left on device" in done.stderr


def test_a_reader_that_stops_reading_ends_the_command_quietly(
    write_config: ConfigWriter,
) -> None:
    # No feeds: update's first words are its summary line, written while its
    # database is open (a table would go through rich, which ends quietly itself).
    config = write_config([])
    for command in (["update"], ["build"], ["status", "--json"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--config", str(config), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        process.stdout.close()  # as `| head` does once it has its lines
        _, errors = process.communicate(timeout=60)
        assert "Traceback" not in errors and "Error" not in errors, errors
        assert process.returncode != 0  # what it meant to print was not read


def test_example_config_is_valid_and_has_the_seed_source() -> None:
    config = load_config(REPO / "feeds.yaml")
    assert len(config.feeds) >= 12
    assert len(config.categories) >= 3
    kuai = [f for f in config.feeds if f.name and "快科技" in f.name]
    assert kuai and "新媒体" in kuai[0].categories
    assert {c.slug for c in config.categories} >= {"xin-mei-ti"}


def _start(config: Path, *command: str) -> subprocess.Popen[str]:
    """`aggregator --config CONFIG COMMAND...` in a process of its own, as a user runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--config", str(config), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _start_run(config: Path) -> subprocess.Popen[str]:
    return _start(config, "run", "--tick", "1")


def _stop(process: subprocess.Popen[str]) -> str:
    """Stop `run` as a service manager does (SIGTERM); everything it printed."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output


@contextlib.contextmanager
def _fast_and_endless_feeds(write_config: ConfigWriter) -> Iterator[tuple[Server, Path]]:
    """A config of a feed that answers at once and one whose body never ends."""
    fast = rss("Fast", [Item("Fast story", "https://fast.test/1")])
    with serve(
        {
            "/fast": Reply(body=fast, headers={"Content-Type": "application/rss+xml"}),
            "/slow": lambda _: Reply(body=drip(b" ", 0.2)),
        }
    ) as server:
        yield (
            server,
            write_config(
                [{"url": server.url("/fast")}, {"url": server.url("/slow")}],
                fetch={"deadline": "60s"},
            ),
        )


def _stored_titles(config: Path) -> list[tuple[str]]:
    """The stories' titles, once the database has passed SQLite's integrity check."""
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return db.execute("SELECT title FROM stories").fetchall()


def _rss_route(title: str, items: list[Item]) -> Callable[[Request], Reply]:
    """A route serving `items` as they are at each request, so a test can add to them."""
    headers = {"Content-Type": "application/rss+xml"}
    return lambda _: Reply(body=rss(title, items), headers=headers)


def _page_shows(page: Path, text: str) -> Callable[[], bool]:
    return lambda: page.exists() and text in page.read_text("utf-8")


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never happened")
        time.sleep(0.05)


def test_run_polls_at_the_interval_republishes_and_stops_on_sigterm(
    write_config: ConfigWriter,
) -> None:
    """`run` with sources unreachable but one still publishes a digest naming them,
    polls the reachable one again at its interval and republishes what it finds."""
    stories = [Item("Reachable story", "https://good.test/1")]
    with serve({"/good": _rss_route("Good", stories)}) as s:
        config = write_config(
            [
                {"url": s.url("/good"), "name": "Reachable", "interval": "1s"},
                {"url": closed_port_url() + "a.xml", "name": "Offline A"},
                {"url": closed_port_url() + "b.xml", "name": "Offline B"},
            ]
        )
        index = config.parent / "var" / "public" / "index.html"
        process = _start_run(config)
        try:
            _wait_for(_page_shows(index, "Reachable story"), "the story on the digest page")
            first_page = index.read_text("utf-8")
            stories.append(Item("Later story", "https://good.test/2"))
            _wait_for(_page_shows(index, "Later story"), "the later story on the digest page")
        finally:
            output = _stop(process)
        polls = len(s.requests_to("/good"))
    assert process.returncode == 0, output
    assert polls >= 2
    assert "Offline A" in first_page and "Offline B" in first_page
    assert "Sources with problems" in first_page
    assert "connection refused" in output
    assert "Offline A" in output
    assert "--every-feed" not in output  # an option `run` does not have


def test_run_takes_up_feeds_yaml_edits_and_refuses_an_invalid_one_without_stopping(
    write_config: ConfigWriter,
) -> None:
    """Sources are added to feeds.yaml while `run` runs; each edit takes effect
    at the next check, and a broken one is reported while the last good one goes on."""
    first = [Item("First story", "https://first.test/1")]
    added = [Item("Added story", "https://added.test/1")]

    with serve({"/first": _rss_route("First", first), "/added": _rss_route("Added", added)}) as s:
        one = [{"url": s.url("/first"), "name": "First", "interval": "1s"}]
        config = write_config(one)
        index = config.parent / "var" / "public" / "index.html"
        extra_feed = index.parent / "feeds" / "extra.atom"

        on_page = functools.partial(_page_shows, index)
        process = _start_run(config)
        try:
            _wait_for(on_page("First story"), "the first feed's story on the digest page")
            write_config([*one, {"url": s.url("/added"), "name": "Added", "categories": ["extra"]}])
            _wait_for(on_page("Added story"), "the added feed's story on the digest page")
            assert "Added story" in extra_feed.read_text("utf-8")
            write_config([*one, {"url": "not a url"}])
            first.append(Item("Later story", "https://first.test/2"))
            _wait_for(on_page("Later story"), "a later story of the feed still configured")
            write_config(one)
            _wait_for(lambda: not on_page("Added story")(), "the removed feed's story leaving")
            _wait_for(lambda: not extra_feed.exists(), "the feed of its category leaving")
        finally:
            output = _stop(process)
    assert process.returncode == 0, output
    assert f"{config} was edited: now in use (1 feed(s) added)." in output
    assert f"  + {s.url('/added')}" in output
    assert f"{config} was edited and is now invalid (1 problem(s))" in output
    assert f"{config}:" in output and "feeds[1].url" in output
    assert f"{config} was edited: now in use (1 removed)." in output
    assert f"Removed {extra_feed}: its category is no longer in the config." in output


def test_run_stops_once_however_many_sigterms_come_while_it_stops(
    write_config: ConfigWriter,
) -> None:
    """`make run` under `timeout`, or a service manager, sends SIGTERM more than
    once: make passes its own on to the command, on top of the one sent to the
    whole process group. Every signal after the first must leave the stopping alone."""
    config = write_config([{"url": closed_port_url() + "feed.xml", "name": "Offline"}])
    index = config.parent / "var" / "public" / "index.html"
    process = _start_run(config)
    try:
        _wait_for(index.exists, "the first publish")
        time.sleep(0.5)
        # One signal a millisecond until the process has gone, so that some
        # reach it in each moment of its stopping.
        while process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert "connection refused" in output


def test_run_stopped_during_a_poll_exits_0_with_its_database_sound(
    write_config: ConfigWriter,
) -> None:
    """The poll under way ends without waiting for the body that never ends, and
    keeps the story it had stored: it is not rolled back to be fetched again."""
    with _fast_and_endless_feeds(write_config) as (server, config):
        process = _start_run(config)
        try:
            _wait_for(lambda: bool(server.requests_to("/slow")), "a request for /slow")
            time.sleep(2.5)  # two ticks come while the poll is under way
            output = _stop(process)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    # Those ticks are skipped, as meant, without a warning from the scheduler for each.
    assert "maximum number of running instances" not in output, output
    assert _stored_titles(config) == [("Fast story",)]
    assert "1 feeds: 1 ok, 0 failed; 1 new" in output
    assert "Stopped before the other feeds; the next run or update publishes" in output
    # Published by the next run or update, which the database tells it to do.
    index = config.parent / "var" / "public" / "index.html"
    assert "Fast story" not in index.read_text("utf-8")
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        assert db.execute(
            "SELECT value FROM meta WHERE key = ?", (UNPUBLISHED_KEY,)
        ).fetchall() == [("1",)]


def test_run_says_once_that_its_database_is_unreachable_and_goes_on_once_it_is_back(
    write_config: ConfigWriter,
) -> None:
    """A PostgreSQL server restarted under `run`: one line saying so and one
    when it is back, not a traceback at every check, and no restart needed."""
    stories = [Item("Before the restart", "https://db.test/1")]
    with postgres_server() as database, serve({"/feed": _rss_route("Feed", stories)}) as s:
        feeds = [{"url": s.url("/feed"), "interval": "1s"}]
        config = write_config(feeds, database=database.new_database())
        index = config.parent / "var" / "public" / "index.html"
        process = _start_run(config)
        try:
            _wait_for(_page_shows(index, "Before the restart"), "the first poll published")
            database.stop()
            time.sleep(3.5)  # three checks or more with the database gone
            stories.append(Item("After the restart", "https://db.test/2"))
            database.start()
            _wait_for(_page_shows(index, "After the restart"), "a poll once the server is back")
        finally:
            output = _stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count("Error: cannot reach database") == 1, output
    assert "Connection refused. Trying again at every check (-v logs each time)." in output
    assert output.count("Working again.") == 1


def test_run_says_once_that_it_cannot_publish_and_publishes_once_it_can(
    write_config: ConfigWriter,
) -> None:
    """An output folder that cannot be written for a while (here a file stands
    where feeds/ should be; a full disk is the same): one line, then the
    stories it could not publish are published once it can."""
    stories = [Item("First story", "https://out.test/1")]
    with serve({"/feed": _rss_route("Feed", stories)}) as s:
        config = write_config([{"url": s.url("/feed"), "interval": "1s"}])
        public = config.parent / "var" / "public"
        process = _start_run(config)
        try:
            _wait_for(_page_shows(public / "index.html", "First story"), "the first publish")
            (public / "feeds").rename(public / "feeds.aside")
            (public / "feeds").write_text("in the way")
            stories.append(Item("Second story", "https://out.test/2"))
            time.sleep(3.5)  # the story stored, and three checks or more failing to publish it
            assert "Second story" not in (public / "index.html").read_text("utf-8")
            (public / "feeds").unlink()
            (public / "feeds.aside").rename(public / "feeds")
            _wait_for(_page_shows(public / "index.html", "Second story"), "the story published")
        finally:
            output = _stop(process)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert output.count("Error: cannot write to") == 1, output
    assert "(site.output_dir): Not a directory" in output
    assert output.count("Working again.") == 1
    assert "Second story" in (public / "feeds" / "all.atom").read_text("utf-8")


@pytest.mark.parametrize("setting", ["output_dir", "posts_dir"])
def test_update_that_cannot_publish_names_the_folder_says_what_it_stored_and_exits_3(
    write_config: ConfigWriter, cli: Cli, setting: str
) -> None:
    with serve({"/feed": _rss_route("Feed", [Item("Kept story", "https://k.test/1")])}) as s:
        config = write_config([{"url": s.url("/feed")}], **{setting: "blocked/out"})
        (config.parent / "blocked").write_text("a file where the folder must go")
        first = cli("--config", str(config), "update")
        assert first.exit_code == 3, first.output
        assert "1 feeds: 1 ok, 0 failed; 1 new" in first.output  # the summary is kept
        assert f"(site.{setting}): Not a directory" in first.output
        assert "what was polled is stored" in first.output
        assert "Errno" not in first.output
        (config.parent / "blocked").unlink()
        second = cli("--config", str(config), "update")
    assert second.exit_code == 0, second.output
    assert _stored_titles(config) == [("Kept story",)]
    published = config.parent / ("blocked/out" if setting == "output_dir" else "var/public")
    assert "Kept story" in (published / "feeds" / "all.atom").read_text("utf-8")


def test_a_command_whose_database_is_down_exits_3_with_its_reason(
    write_config: ConfigWriter, cli: Cli
) -> None:
    with postgres_server() as database:
        config = write_config([], database=database.new_database())
        assert cli("--config", str(config), "status").exit_code == 0
        database.stop()
        result = cli("--config", str(config), "update")
    assert result.exit_code == 3, result.output
    assert "cannot reach database" in result.output and "Connection refused" in result.output


def test_ctrl_c_ends_update_at_the_feeds_under_way_exits_130_and_keeps_what_was_stored(
    write_config: ConfigWriter,
) -> None:
    with _fast_and_endless_feeds(write_config) as (server, config):
        process = _start(config, "update")
        _wait_for(lambda: bool(server.requests_to("/slow")), "a request for /slow")
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    assert "1 feeds: 1 ok, 0 failed; 1 new" in output  # the summary of what was polled
    assert "Stopped before the other feeds" in output
    assert "Traceback" not in output and "internal error" not in output
    assert _stored_titles(config) == [("Fast story",)]


def test_a_second_ctrl_c_interrupts_update_at_once(write_config: ConfigWriter) -> None:
    with _fast_and_endless_feeds(write_config) as (server, config):
        process = _start(config, "update")
        _wait_for(lambda: bool(server.requests_to("/slow")), "a request for /slow")
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    assert _stored_titles(config) == [("Fast story",)]


def test_update_summary_lists_feeds_that_brought_entries_only_while_there_are_few() -> None:
    def result(name: str, **outcome: Any) -> FeedResult:
        started = datetime(2024, 5, 1, tzinfo=UTC)
        return FeedResult(
            f"https://{name}.test/", name, PollOutcome(started, 0.1, 200, 10, **outcome)
        )

    troubled = [result("broken", error="timed out"), result("odd", warning="not a feed", new=1)]
    quiet = [result(f"quiet{i}", not_modified=True) for i in range(3)]
    few = [result(f"news{i}", new=1) for i in range(MAX_NEWS_ROWS)]
    report = UpdateReport(results=[*troubled, *few, *quiet])
    shown, note = _summary_rows(report, every_feed=False)
    assert shown == troubled + few
    assert note == " (3 feeds with nothing new not listed; --every-feed lists them)"

    many = [*few, result("one-more", updated=2)]
    shown, note = _summary_rows(UpdateReport(results=[*many, *troubled, *quiet]), every_feed=False)
    assert shown == troubled
    assert note == (
        f" ({MAX_NEWS_ROWS + 1} feeds that brought entries and 3 feeds with nothing new"
        " not listed; --every-feed lists them)"
    )
    everything = [*many, *troubled, *quiet]
    assert _summary_rows(UpdateReport(results=everything), every_feed=True) == (everything, "")
    # `run`, which has no --every-feed, names what does list them.
    _, note = _summary_rows(report, every_feed=False, lister="`aggregator status`")
    assert note == " (3 feeds with nothing new not listed; `aggregator status` lists them)"


def test_square_brackets_from_feeds_and_servers_are_printed_as_they_are(
    write_config: ConfigWriter, cli: Cli
) -> None:
    # rich reads "[/]" as markup: a feed's title or a server's reason phrase
    # holding one made update and status raise instead of printing their tables.
    titled = rss("Weekly [/] digest", [Item("Story", "https://b.test/1", "b1")])
    routes = {
        "/titled": Reply(body=titled, headers={"Content-Type": "application/rss+xml"}),
        "/reason": Reply(status=500, reason="[/] oops [bold]"),
    }
    with serve(routes) as server:
        config = write_config(
            [
                {"url": server.url("/titled")},
                {"url": server.url("/reason"), "name": "Tips [red]and[/red] tricks"},
            ]
        )
        first = cli("--config", str(config), "update", "--every-feed")
        second = cli("--config", str(config), "update", "--every-feed")
        status = cli("--config", str(config), "status")
    assert first.exit_code == second.exit_code == 1, (first.output, second.output)
    assert status.exit_code == 0, status.output
    for result in (first, second):
        assert "Tips [red]and[/red] tricks" in result.output
        assert "[/] oops [bold]" in result.output
    # An unnamed feed is named by its title from its first poll on, as status names it.
    assert "Weekly [/] digest" in first.output and "Weekly [/] digest" in second.output
    assert "Weekly [/] digest" in status.output and "Tips [red]and[/red] tricks" in status.output


def test_update_lists_only_feeds_that_failed_or_brought_something(
    write_config: ConfigWriter, cli: Cli
) -> None:
    feed = rss("Quiet", [Item("Story", "https://q.test/1", "q1")])
    with serve(
        {"/quiet": Reply(body=feed, headers={"Content-Type": "application/rss+xml"})}
    ) as server:
        config = write_config(
            [{"url": server.url("/quiet"), "name": "Quiet feed"}, {"url": closed_port_url()}]
        )
        first = cli("--config", str(config), "update")
        assert "Quiet feed" in first.output  # it brought a story
        second = cli("--config", str(config), "update")
        assert "Quiet feed" not in second.output and "connection refused" in second.output
        assert "(1 feeds with nothing new not listed; --every-feed lists them)" in second.output
        every = cli("--config", str(config), "update", "--every-feed")
        assert "Quiet feed" in every.output and "not listed" not in every.output
    assert second.exit_code == every.exit_code == 1


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_commands_started_together_on_a_new_database_all_work(
    write_config: ConfigWriter, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Two cron jobs, or `run` and a hand-typed `status`, set the same new database up at
    once: the schema, the feeds of feeds.yaml, the first switch of SQLite's file to WAL."""
    feeds = [{"url": f"https://f{i}.test/feed", "categories": ["news"]} for i in range(3)]
    for round_ in range(3):
        if kind == "sqlite":
            database = f"sqlite:///{tmp_path / f'round{round_}' / 'agg.db'}"
        else:
            database = request.getfixturevalue("postgres").new_database()
        config = write_config(feeds, database=database)
        processes = [_start(config, "status") for _ in range(4)]
        outputs = [process.communicate(timeout=120)[0] for process in processes]
        for process, output in zip(processes, outputs, strict=True):
            assert process.returncode == 0, output
            assert output.startswith("3 feeds, 0 entries"), output
