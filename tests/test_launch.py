"""The command's start-up: its imports frozen out of the cycle collector, and thawed later."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from aggregator.core import _old_objects_frozen

REPORT = """
import gc, json, sys
{before}
from aggregator.launch import import_program
import_program()
print(json.dumps({{
    "enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "young": gc.get_count()[0],
    "imported": "aggregator.core" in sys.modules and "aggregator.cli" in sys.modules,
}}))
"""


def _start_up(before: str = "") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", REPORT.format(before=before)],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_the_program_is_imported_with_the_collector_off_then_frozen_and_the_collector_on() -> None:
    report = _start_up()
    assert report["imported"] is True
    assert report["enabled"] is True
    # Everything the imports made is frozen: tens of thousands of objects,
    # and none left young to set off the next collection.
    assert isinstance(report["frozen"], int) and report["frozen"] > 20_000
    assert isinstance(report["young"], int) and report["young"] < 100


def test_a_caller_that_turned_the_collector_off_keeps_it_off_and_nothing_frozen() -> None:
    report = _start_up(before="gc.disable()")
    assert report["imported"] is True
    assert report["enabled"] is False
    assert report["frozen"] == 0


def test_frozen_blocks_thaw_everything_when_the_outermost_ends() -> None:
    gc.freeze()  # as the command's start-up leaves the process
    try:
        with _old_objects_frozen():
            made_meanwhile = [object() for _ in range(10)]
            with _old_objects_frozen():
                frozen_inside = gc.get_freeze_count()
            # An inner block ending leaves the outer block's objects frozen.
            assert gc.get_freeze_count() == frozen_inside > 0
        # The start-up's objects are thawed with the block's, so a long `run`
        # collects whichever of them become garbage.
        assert gc.get_freeze_count() == 0
        assert made_meanwhile
    finally:
        gc.unfreeze()
