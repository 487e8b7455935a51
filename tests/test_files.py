"""Atomic writes, and the cleanup of what a killed writer leaves behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

from aggregator.files import remove_stale_temporaries, write_if_changed


def test_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "feed.atom"
    assert write_if_changed(path, b"one")
    os.utime(path, (1, 1))
    assert not write_if_changed(path, b"one")
    assert path.stat().st_mtime == 1
    assert write_if_changed(path, b"two") and path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["feed.atom"]


def test_temporaries_left_by_a_killed_writer_are_removed_once_stale(tmp_path: Path) -> None:
    old = tmp_path / "digest" / ".index.html.k3j5x.tmp"
    fresh = tmp_path / ".all.atom.a1b2c.tmp"  # perhaps another writer's, still at work
    own = tmp_path / "digest" / "notes.tmp"  # not ours: no leading dot
    for path in (old, fresh, own):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(own, (hour_ago, hour_ago))
    assert remove_stale_temporaries(tmp_path) == 1
    assert not old.exists() and fresh.exists() and own.exists()
    assert remove_stale_temporaries(tmp_path / "absent") == 0
