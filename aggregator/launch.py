"""The `aggregator` command's first step: the program's imports, without the cycle collector.

Importing the program makes some sixty thousand objects (modules, classes,
SQLAlchemy's and aiohttp's tables) that live as long as the process, and
not one of them is garbage. With the collector on, they set off a hundred
young collections on the way and a full one soon after, each walking them
all again: about 35 ms of CPU in a poll where every feed answers 304, which
is a run that does little besides starting up. So they are imported with
the collector off, collected once, and frozen (`gc.freeze`), which leaves
them out of every later collection; the first poll or publish thaws them when it ends
(`core._old_objects_frozen`), so a long `run` collects them like any other
object once start-up is over.
"""

from __future__ import annotations

import gc
from types import ModuleType
from typing import NoReturn


def import_program() -> ModuleType:
    """`aggregator.cli`, and everything it imports, imported as the command imports it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        from aggregator import cli
    finally:
        if collecting:
            # One full collection, which the collector paces the next ones by
            # (frozen or not, they are counted as long-lived): without it the
            # poll's own objects would be walked in full every tenth middle
            # collection. It also leaves no import-time garbage to freeze.
            gc.collect()
            gc.freeze()
            gc.enable()
    return cli


def entry() -> NoReturn:
    """The `aggregator` console script and `python -m aggregator`."""
    import_program().entry()
    raise AssertionError("cli.entry ends the process")  # pragma: no cover
