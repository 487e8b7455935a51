"""config_cache: a valid feeds.yaml is validated once, and nothing else is ever served from it."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator import config as validating
from aggregator import config_cache
from aggregator.errors import ConfigError

VALID = """\
site:
  base_url: https://news.example.org/
  output_dir: ~/public
  interval: 15m
feeds:
  - url: https://example.com/feed.xml
    name: Example
    categories: [tech]
"""


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "aggregator"


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every validation the cache asks for, by the path it validated."""
    seen: list[Path] = []
    original = validating.config_from_bytes

    def counting(data: bytes, path: Path) -> object:
        seen.append(path)
        return original(data, path)

    monkeypatch.setattr(validating, "config_from_bytes", counting)
    return seen


def write(folder: Path, text: str) -> Path:
    path = folder / "feeds.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_an_unchanged_file_is_validated_once_and_read_back_equal(
    tmp_path: Path, cache_home: Path, validations: list[Path]
) -> None:
    path = write(tmp_path, VALID)
    first = config_cache.load_config(path)
    second = config_cache.load_config(path)
    assert validations == [path]
    assert second == first == validating.load_config(path)
    (store,) = cache_home.iterdir()
    assert store.stat().st_mode & 0o777 == 0o600  # a database URL may carry a password
    assert cache_home.stat().st_mode & 0o777 == 0o700


def test_any_change_to_the_file_is_validated_again(tmp_path: Path, validations: list[Path]) -> None:
    path = write(tmp_path, VALID)
    config_cache.load_config(path)
    # Same size, same second: only the bytes tell the two apart.
    path.write_text(path.read_text().replace("15m", "16m"), encoding="utf-8")
    assert config_cache.load_config(path).feeds[0].interval == timedelta(minutes=16)
    path.write_text(path.read_text().replace("interval: 16m", "intervall: 1m"), encoding="utf-8")
    with pytest.raises(ConfigError) as problem:
        config_cache.load_config(path)
    assert "feeds.yaml:4: site.intervall: unknown key" in str(problem.value)
    assert len(validations) == 3


def test_an_invalid_file_is_never_kept(tmp_path: Path, cache_home: Path) -> None:
    path = write(tmp_path, "site: {}\nfeeds: []\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match="base_url"):
            config_cache.load_config(path)
    assert not cache_home.exists()


def test_a_missing_file_is_reported_as_the_validating_loader_reports_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: \(file\): file not found"):
        config_cache.load_config(tmp_path / "nope.yaml")


def test_home_is_part_of_the_key_because_paths_may_start_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, VALID)
    monkeypatch.setenv("HOME", "/home/alice")
    assert config_cache.load_config(path).site.output_dir == Path("/home/alice/public")
    monkeypatch.setenv("HOME", "/home/bob")
    assert config_cache.load_config(path).site.output_dir == Path("/home/bob/public")


class _Planted:
    """Unpickling this runs a command, as a cache file planted by someone else might."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_cache_file_that_names_anything_but_config_classes_runs_nothing(
    tmp_path: Path, validations: list[Path]
) -> None:
    path = write(tmp_path, VALID)
    validated = config_cache.load_config(path)
    (store,) = config_cache.cache_folder().iterdir()  # type: ignore[union-attr]
    marker = tmp_path / "ran"
    key, _config = pickle.loads(store.read_bytes())
    store.write_bytes(pickle.dumps((key, _Planted(marker))))
    assert config_cache.load_config(path) == validated
    assert not marker.exists()
    assert len(validations) == 2  # validated again, and the cache written anew
    assert config_cache.load_config(path).site.base_url == "https://news.example.org/"
    assert len(validations) == 2


def test_a_cache_file_others_may_write_is_not_trusted(
    tmp_path: Path, validations: list[Path]
) -> None:
    path = write(tmp_path, VALID)
    config_cache.load_config(path)
    (store,) = config_cache.cache_folder().iterdir()  # type: ignore[union-attr]
    store.chmod(0o666)
    config_cache.load_config(path)
    assert len(validations) == 2


def test_without_a_writable_cache_folder_every_run_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, validations: list[Path]
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    path = write(tmp_path, VALID)
    assert config_cache.load_config(path) == config_cache.load_config(path)
    assert len(validations) == 2


def test_a_run_with_an_unchanged_file_imports_neither_pydantic_nor_ruamel(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    program = (
        "import sys; from pathlib import Path; from aggregator.config_cache import load_config; "
        f"load_config(Path({str(path)!r})); "
        "print(sorted(m for m in ('pydantic', 'ruamel.yaml') if m in sys.modules))"
    )

    def imported() -> str:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert imported() == "['pydantic', 'ruamel.yaml']"  # the first run validates
    assert imported() == "[]"


def test_an_edited_module_of_a_subpackage_validates_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, validations: list[Path]
) -> None:
    """The program is part of the key, down to the modules of its subpackages (storage/)."""
    package = tmp_path / "package"
    (package / "storage").mkdir(parents=True)
    module = package / "storage" / "schema.py"
    module.write_text("A = 1\n")
    monkeypatch.setattr(config_cache, "_PACKAGE", package)
    path = write(tmp_path, VALID)
    config_cache.load_config(path)
    config_cache.load_config(path)
    assert validations == [path]
    module.write_text("A = 22\n")  # another size: a new program
    config_cache.load_config(path)
    assert validations == [path, path]


def _configs(folder: Path, count: int) -> list[Path]:
    """`count` valid feeds.yaml files, each in a folder of its own, as scripts make them."""
    paths = []
    for number in range(count):
        folder_of_one = folder / f"run-{number}"
        folder_of_one.mkdir()
        paths.append(write(folder_of_one, VALID))
    return paths


def _entry(path: Path) -> Path:
    """The cache file that keeps `path`'s config."""
    store = config_cache._store(path)
    assert store is not None
    return store


def _age(store: Path, days: float) -> None:
    moment = time.time() - days * 24 * 3600
    os.utime(store, (moment, moment))


def test_only_the_most_recently_used_configs_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_home: Path, validations: list[Path]
) -> None:
    monkeypatch.setattr(config_cache, "KEEP_CONFIGS", 3)
    paths = _configs(tmp_path, 5)
    for days_ago, path in zip((5, 4, 3, 2), paths, strict=False):
        config_cache.load_config(path)
        _age(_entry(path), days_ago)
    assert len(list(cache_home.iterdir())) == 3  # the fourth write dropped the first
    config_cache.load_config(paths[1])  # used today: now the most recent
    config_cache.load_config(paths[4])  # a new one: the least recently used goes
    kept = {entry.name for entry in cache_home.iterdir()}
    assert kept == {_entry(p).name for p in (paths[1], paths[3], paths[4])}
    assert len(validations) == 5  # reading paths[1] back validated nothing
    config_cache.load_config(paths[0])  # dropped: validated again, as on a first run
    assert len(validations) == 6


def test_a_config_unused_for_a_month_is_dropped_however_few_are_kept(
    tmp_path: Path, cache_home: Path
) -> None:
    old, recent, new = _configs(tmp_path, 3)
    config_cache.load_config(old)
    config_cache.load_config(recent)
    _age(_entry(old), 31)
    _age(_entry(recent), 29)
    config_cache.load_config(new)
    kept = {entry.name for entry in cache_home.iterdir()}
    assert kept == {_entry(p).name for p in (recent, new)}


def test_reading_a_config_back_marks_it_used_at_most_once_a_day(tmp_path: Path) -> None:
    (path,) = _configs(tmp_path, 1)
    config_cache.load_config(path)
    store = _entry(path)
    _age(store, 0.5)
    config_cache.load_config(path)
    assert time.time() - store.stat().st_mtime > 0.4 * 24 * 3600  # not written on every run
    _age(store, 40)
    config_cache.load_config(path)
    assert time.time() - store.stat().st_mtime < 60  # kept alive by a cron job's use


def test_a_write_removes_temporaries_a_killed_run_left_in_the_cache(
    tmp_path: Path, cache_home: Path
) -> None:
    first, second = _configs(tmp_path, 2)
    config_cache.load_config(first)
    left = cache_home / ".config-0123.pickle.abcd.tmp"
    left.write_bytes(b"half a pickle")
    _age(left, 1)
    config_cache.load_config(second)
    assert not left.exists()
    assert len(list(cache_home.iterdir())) == 2
