"""feeds.yaml as last validated, kept by its bytes, so an unchanged file is not validated again.

Validating needs pydantic and ruamel.yaml: importing them and checking a
thousand feeds took a quarter of a second of every `update`, a fifth of a
poll where every server answers 304, which a cron job may run every few
minutes. So the `Config` of a valid file is kept in the user's cache folder
(`$XDG_CACHE_HOME/aggregator`, else `~/.cache/aggregator`), one file per
config path, under a key made of everything the result depends on: the
file's bytes, its absolute path (relative paths in it are resolved against
its folder), the home folder (`~` in paths) and every module of this package
(a new version, or an edited checkout, validates again). An invalid file is
never kept, so its problems are reported on every run.

The cache is a pickle, read by an unpickler that builds only the few classes
a `Config` is made of, from a file the user owns and nobody else can write:
a planted file cannot run code. Whatever cannot be read or written is simply
validated again; the cache never turns a working run into a failing one.

Every new config path leaves a file behind (a script's temporary folder, a
benchmark's), so writing one prunes the others: only the `KEEP_CONFIGS`
most recently used are kept, and none left unused for `KEEP_UNUSED_SECONDS`.
A file's mtime says when it was last used; reading refreshes it, at most once
a day, so a cron job's unchanged config is not written to on every run.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

from aggregator import __version__
from aggregator.files import remove_stale_temporaries, write_if_changed
from aggregator.models import Category, Config, FeedSource, FetchLimits, SiteSettings

#: Bump when the layout of the cached value changes.
_FORMAT = b"aggregator-config-cache 1"
_PACKAGE = Path(__file__).resolve().parent

#: Validated configs kept, the most recently used first.
KEEP_CONFIGS = 32
#: A config not used for this long (30 days) is dropped, however few are kept.
KEEP_UNUSED_SECONDS = 30 * 24 * 3600
#: A config read back is marked as used if it was last marked longer ago than this.
_MARK_USED_AFTER_SECONDS = 24 * 3600

# Every class a pickled Config may name: ours, and the standard ones among its fields.
_BUILDABLE = frozenset(
    [("aggregator.models", cls.__name__) for cls in (Config, SiteSettings, FetchLimits,
                                                      FeedSource, Category)]
    + [("pathlib", "PosixPath"), ("pathlib", "WindowsPath")]
    + [("datetime", "timedelta"), ("datetime", "time")]
)  # fmt: skip


def load_config(path: Path) -> Config:
    """`config.load_config(path)`, from the cache when the file has not changed since."""
    try:
        data = path.read_bytes()
    except OSError:  # the validating loader says what is wrong with the file
        from aggregator.config import load_config as validated

        return validated(path)
    key = _key(path, data)
    store = _store(path)
    cached = _read(store, key) if store is not None else None
    if cached is not None:
        return cached
    config = _validate(path, data)
    if store is not None:
        _write(store, key, config)
    return config


def cache_folder() -> Path | None:
    """Where validated configs are kept; None when there is no home to keep them in."""
    root = os.environ.get("XDG_CACHE_HOME")
    if not root or not os.path.isabs(root):
        try:
            root = str(Path.home() / ".cache")
        except RuntimeError:  # no home folder
            return None
    return Path(root) / "aggregator"


def _validate(path: Path, data: bytes) -> Config:
    # Imported here: this module exists so that an unchanged file never imports them.
    from aggregator.config import config_from_bytes

    return config_from_bytes(data, path)


def _store(path: Path) -> Path | None:
    folder = cache_folder()
    if folder is None:
        return None
    name = hashlib.sha256(str(path.absolute()).encode("utf-8", "surrogatepass")).hexdigest()
    return folder / f"config-{name[:32]}.pickle"


def _key(path: Path, data: bytes) -> bytes:
    digest = hashlib.sha256(_FORMAT)
    for part in (str(path.absolute()), os.environ.get("HOME", ""), __version__):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for module in sorted(_PACKAGE.rglob("*.py")):  # subpackages too: storage/, migrations/
        stat = module.stat()
        name = module.relative_to(_PACKAGE).as_posix()
        digest.update(f"{name} {stat.st_size} {stat.st_mtime_ns}\0".encode())
    digest.update(data)
    return digest.digest()


def _read(store: Path, key: bytes) -> Config | None:
    try:
        with store.open("rb") as file:
            stat = os.fstat(file.fileno())
            if not _private(stat):
                return None
            found_key, config = _Unpickler(file).load()
            if found_key != key or not isinstance(config, Config):
                return None
            if time.time() - stat.st_mtime > _MARK_USED_AFTER_SECONDS:
                with suppress(OSError):  # a read-only cache still serves what it holds
                    os.utime(file.fileno())
    except Exception:  # missing, truncated, planted or from another layout: validate again
        return None
    return config


def _write(store: Path, key: bytes, config: Config) -> None:
    with suppress(OSError):  # a read-only home: validate every time, as before
        store.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The database URL may carry a password: the file is the user's alone.
        write_if_changed(store, pickle.dumps((key, config), protocol=5), mode=0o600)
        _prune(store.parent, keep=store)


def _prune(folder: Path, keep: Path) -> None:
    """Remove the configs least recently used beyond `KEEP_CONFIGS`, and any long unused."""
    others: list[tuple[float, Path]] = []
    for entry in folder.glob("config-*.pickle"):
        if entry != keep:
            with suppress(OSError):  # removed meanwhile by another run
                others.append((entry.stat().st_mtime, entry))
    others.sort(reverse=True)
    unused_since = time.time() - KEEP_UNUSED_SECONDS
    for kept, (last_used, entry) in enumerate(others, start=2):  # `keep` is the first
        if kept > KEEP_CONFIGS or last_used < unused_since:
            with suppress(OSError):  # gone already, or not ours to remove
                entry.unlink()
    remove_stale_temporaries(folder)  # a run killed while writing


def _private(stat: os.stat_result) -> bool:
    """Whether a file is this user's and only they can write it."""
    return not hasattr(os, "getuid") or (stat.st_uid == os.getuid() and not stat.st_mode & 0o022)


class _Unpickler(pickle.Unpickler):
    """Builds a `Config` and nothing else: any other class in the file is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _BUILDABLE:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a Config")
        return super().find_class(module, name)
