"""The `aggregator` command's first step: the program's imports, without the cycle collector.

Importing the program makes some sixty thousand objects (modules, classes,
SQLAlchemy's and aiohttp's tables) that live as long as the process, next
to no garbage among them. With the collector on, they set off a hundred
young collections on the way and a full one soon after, each walking them
all again: about 35 ms of CPU in a poll where every feed answers 304, which
is a run that does little besides starting up. So they are imported with
the collector off, collected once, and frozen (`gc.freeze`), which leaves
them out of every later collection; the first poll or publish thaws them
when it ends (`core._old_objects_frozen`), so a long `run` collects them
like any other object once start-up is over.
"""

from __future__ import annotations

import gc
from typing import NoReturn


def import_program() -> None:
    """Import `aggregator.cli`, and everything it imports, as the command imports it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        import aggregator.cli  # noqa: F401 (imported for the frozen objects it makes)
    finally:
        if collecting:
            # One full collection first: the collector times the next full
            # one by how many objects the last found alive, and with none
            # run yet it would walk a poll's survivors at every tenth
            # middle collection. Nor is any import-time garbage frozen.
            gc.collect()
            gc.freeze()
            gc.enable()


def entry() -> NoReturn:
    """The `aggregator` console script and `python -m aggregator`."""
    import_program()
    from aggregator.cli import entry as run_command  # imported just above

    run_command()
