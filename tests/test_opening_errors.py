"""open_storage with database URLs written wrong: one StorageError line, never a traceback.

A URL is typed by hand into feeds.yaml, so each way of getting it wrong
must say what is wrong (exit 3 from the CLI), with the password hidden.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from aggregator.errors import StorageError
from aggregator.storage import SCHEMA_REVISION, open_storage
from tests.conftest import write_config_file

#: How every refusal of a database type ends, as README's PostgreSQL section has it.
SUPPORTED_ONLY = "only SQLite (sqlite:///PATH) and PostgreSQL through psycopg"


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        pytest.param(
            "mysql://u:secret@127.0.0.1/db",
            ["mysql://u:***@127.0.0.1/db", "driver 'MySQLdb' is not installed", SUPPORTED_ONLY],
            id="driver-not-installed",
        ),
        pytest.param(
            "postgresql+psycopg2://u:secret@127.0.0.1/db",
            ["postgresql+psycopg2://u:***@", "driver 'psycopg2' is not installed", SUPPORTED_ONLY],
            id="postgresql-through-psycopg2",
        ),
        pytest.param(
            "postgresql://u:secret@host:abc/db",
            ["postgresql://u:***@host:abc/db", "the port is not a number"],
            id="port-not-a-number",
        ),
        pytest.param(
            "x+y+z://a",
            ["unknown database type 'x+y+z'", SUPPORTED_ONLY],
            id="two-drivers",
        ),
        pytest.param(
            "no-such-db://u:secret@h/d",
            ["no-such-db://u:***@h/d", "not a database URL"],
            id="scheme-sqlalchemy-cannot-read",
        ),
        pytest.param(
            "sqlite:///{tmp}/ok.db?timeout=abc",
            ["timeout='abc' must be a number of seconds"],
            id="sqlite-timeout-not-a-number",
        ),
        pytest.param(
            "sqlite:///{tmp}/ok.db?check_same_thread=maybe",
            ["check_same_thread='maybe' must be true or false"],
            id="sqlite-flag-not-a-flag",
        ),
        pytest.param(
            "sqlite:///{tmp}/ok.db?timeout=1&timeout=2",
            ["'timeout' is given more than once"],
            id="sqlite-argument-twice",
        ),
        pytest.param(
            "sqlite:///{tmp}/ok.db?mode=ro&nolock=1",
            ["'mode', 'nolock' would be ignored", "uri=true"],
            id="sqlite-uri-parameters-without-uri",
        ),
        pytest.param(
            "sqlite:///{tmp}/ok.db?mode=ro&uri=true",
            ["'mode' would become part of the file's name", "a file: path"],
            id="sqlite-uri-parameters-without-file-path",
        ),
    ],
)
def test_a_url_that_cannot_be_used_is_a_storage_error_saying_why(
    tmp_path: Path, url: str, fragments: list[str]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning reaches the user either
        with pytest.raises(StorageError) as info:
            open_storage(url.format(tmp=tmp_path))

    message = str(info.value)
    assert message.startswith("cannot open database ")
    for fragment in fragments:
        assert fragment in message
    assert "secret" not in message
    assert list(tmp_path.iterdir()) == []  # refused before anything was made


def test_sqlite_uri_parameters_work_as_sqlalchemy_documents(tmp_path: Path) -> None:
    database = tmp_path / "agg.db"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        storage = open_storage(f"sqlite:///file:{database}?mode=rwc&uri=true&timeout=5")
    try:
        assert storage.feed_states() == {}
    finally:
        storage.engine.dispose()

    # The database is the file: path's, not a file named after the query.
    assert [p.name for p in tmp_path.iterdir() if "?" in p.name] == []
    with sqlite3.connect(database) as connection:
        revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    connection.close()
    assert revision == (SCHEMA_REVISION,)


def test_the_cli_exits_3_with_one_line_for_a_driver_that_is_not_installed(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    config = write_config_file(tmp_path, [], database="mysql://u:secret@127.0.0.1/db")

    result = cli("--config", str(config), "status")

    assert result.exit_code == 3, result.output
    assert result.output.startswith("Error: cannot open database mysql://u:***@127.0.0.1/db")
    assert "Traceback" not in result.output and "secret" not in result.output
