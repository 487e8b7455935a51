"""One exception root, so callers can catch everything this package raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class AggregatorError(Exception):
    """Base of every error the aggregator raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One mistake in feeds.yaml, located so the user can go straight to it."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigError(AggregatorError, ValueError):
    """feeds.yaml is missing, unreadable or invalid; carries every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FetchError(AggregatorError):
    """A feed could not be fetched (network, HTTP status, limits)."""


class ParseError(AggregatorError):
    """A fetched document is not a feed we can read."""


class StorageError(AggregatorError):
    """The database could not be opened or migrated."""


class PublishError(AggregatorError):
    """The output folder or the posts folder could not be written; what was stored stays."""


def cause_of(error: BaseException, kind: type[E]) -> E | None:
    """The first exception of `kind` in `error`'s chain of causes and contexts, if any:
    libraries wrap what they catch in exceptions of their own."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
