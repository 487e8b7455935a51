"""Shared fixtures: a config writer, the CLI runner and the corpus location."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from aggregator.cli import main
from tests.postgres import PostgresServer, postgres_server

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Validated configs are kept in a folder of the test session's, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a skip with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not checked out beside the project)")
    return path


ConfigWriter = Callable[..., Path]


def write_config_file(folder: Path, feeds: Sequence[dict[str, Any]], **site: Any) -> Path:
    """Write folder/feeds.yaml; feeds are dicts as in the YAML."""
    settings = {
        "title": "Test digest",
        "base_url": "https://news.example.org/",
        "timezone": "Asia/Shanghai",
        **site,
    }
    path = folder / "feeds.yaml"
    # JSON is YAML too, and needs no YAML library in the tests.
    document = {"site": settings, "feeds": list(feeds)}
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> ConfigWriter:
    """Write a feeds.yaml into tmp_path; feeds are dicts as in the YAML."""

    def write(feeds: Sequence[dict[str, Any]], **site: Any) -> Path:
        return write_config_file(tmp_path, feeds, **site)

    return write


def run_cli(*args: str) -> Result:
    """`aggregator ARGS...` in-process, for fixtures wider than one test."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run `aggregator ARGS...` in-process and return click's result."""

    return run_cli


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (skips when Debian's package is absent)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'agg.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


#: Reports tests want shown after the run even when they pass (title, text).
REPORTS: list[tuple[str, str]] = []


def report(title: str, text: str) -> None:
    """Show `text` under `title` in the summary of `pytest`'s output, pass or fail."""
    REPORTS.append((title, text))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, text in REPORTS:
        terminalreporter.write_sep("-", title)
        terminalreporter.write_line(text)
