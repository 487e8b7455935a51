"""`run` follows its feeds.yaml: an edit saved while it runs takes effect at its next check.

Sources are added to feeds.yaml as people find them, mostly while `run` is
running; an edit that silently did nothing until a restart would be taken
for a feed that never published. So `run` looks at the file on every tick.
An edit that does not validate changes nothing: its problems are reported
(file, line and key, as at start-up) and the previous version goes on being
used until the file is put right. A half-saved file is read as such an edit
and taken up once the save has finished. An edit naming a database that
cannot be opened is tried again at every check, since no save will fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aggregator.config_cache import load_config
from aggregator.core import Aggregator, outputs_fingerprint
from aggregator.errors import AggregatorError, ConfigError, ConfigProblem
from aggregator.models import Config

#: What tells a saved file from the one already read: cheap enough for every tick.
_Stamp = tuple[int, int, int] | None
#: Matches no file: the stamp of an edit to be read again at the next check.
_READ_AGAIN: _Stamp = (-1, -1, -1)


@dataclass(frozen=True)
class ConfigEdit:
    """What one saved edit of feeds.yaml did."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    #: The published files no longer match (a feed, category or page setting changed).
    reshapes_outputs: bool = False
    #: Not empty: the edit was refused, and the previous version is still in use.
    problems: tuple[ConfigProblem, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.problems


class ConfigFollower:
    """The aggregator for what feeds.yaml says now."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator
        self._path = aggregator.config.path
        self._seen = _stamp(self._path)
        self._refused = False
        self._unreachable: tuple[ConfigProblem, ...] = ()  # the database an edit names

    def check(self) -> ConfigEdit | None:
        """Take up feeds.yaml if it was saved since the last look; None when nothing changed."""
        stamp = _stamp(self._path)
        if stamp == self._seen:
            return None
        self._seen = stamp
        current = self.aggregator.config
        try:
            config = load_config(self._path)
            if config == current:
                # Saved unchanged, or put back as it was after a refused edit.
                return self._accepted(ConfigEdit()) if self._refused else None
            self.aggregator = self.aggregator.reconfigured(config)
        except ConfigError as error:
            self._unreachable = ()
            return self._refuse(tuple(error.problems))
        except AggregatorError as error:  # the edited database could not be opened
            # Nothing wrong with the file, so no new save will come to fix
            # it: a database server starting, a folder made. Tried again at
            # every check, and said again only if the reason changes.
            self._seen = _READ_AGAIN
            problems = (ConfigProblem(str(self._path), None, "site.database", str(error)),)
            if problems == self._unreachable:
                return None
            self._unreachable = problems
            return self._refuse(problems)
        return self._accepted(_difference(current, config))

    def _accepted(self, edit: ConfigEdit) -> ConfigEdit:
        self._refused = False
        self._unreachable = ()
        return edit

    def _refuse(self, problems: tuple[ConfigProblem, ...]) -> ConfigEdit:
        self._refused = True
        return ConfigEdit(problems=problems)


def _difference(before: Config, after: Config) -> ConfigEdit:
    old = {feed.url for feed in before.feeds}
    new = {feed.url for feed in after.feeds}
    return ConfigEdit(
        added=tuple(feed.url for feed in after.feeds if feed.url not in old),
        removed=tuple(feed.url for feed in before.feeds if feed.url not in new),
        reshapes_outputs=outputs_fingerprint(before) != outputs_fingerprint(after),
    )


def _stamp(path: Path) -> _Stamp:
    try:
        status = os.stat(path)
    except OSError:
        return None  # gone, for now: read as an edit, and refused as "file not found"
    return (status.st_mtime_ns, status.st_size, status.st_ino)
