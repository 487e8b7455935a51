"""A throwaway PostgreSQL server for tests, from Debian's `postgresql` package.

Started once per test session on a free port on 127.0.0.1 with trust
authentication and fsync off (speed, not durability, is wanted here); each
test gets a database of its own. Contains no business logic.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

_names = itertools.count()


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    def __init__(self, port: int, pg_ctl: Callable[..., None] | None = None) -> None:
        self.port = port
        self._pg_ctl = pg_ctl

    def stop(self) -> None:
        """Shut the server down, as an administrator or a crash would."""
        assert self._pg_ctl is not None
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        assert self._pg_ctl is not None
        self._pg_ctl("-w", "start")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://aggregator@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        name = f"test_{os.getpid()}_{next(_names)}"
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server is not installed (Debian package: postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    root = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "aggregator", "--auth=trust",
        "-E", "UTF8", "--locale=C")  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"

    pg_ctl_path = str(bin_dir / "pg_ctl")

    def pg_ctl(*args: str) -> None:
        run(pg_ctl_path, "-D", str(data), "-o", options, "-l", str(root / "log"), *args)

    pg_ctl("-w", "start")
    try:
        yield PostgresServer(port, pg_ctl)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # a test may have stopped it
            pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
