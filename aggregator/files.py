"""Atomic, change-aware file writes. Contains no business logic.

Readers of published files (feed readers, web servers, a cron job copying the
folder) must only ever see a complete old or new version, and a file whose
bytes did not change keeps its mtime so conditional requests stay cheap.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

#: A temporary file older than this was left by a writer that was killed.
STALE_AFTER_SECONDS = 600


def write_if_changed(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `data` to `path` atomically unless it already holds exactly that.

    Returns True when the file was (re)written. `mode` is the new file's
    permissions (published files are for everyone to read).
    """
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return True


def remove_stale_temporaries(folder: Path, older_than: float = STALE_AFTER_SECONDS) -> int:
    """Delete `write_if_changed`'s temporary files that a killed writer left behind.

    A kill between creating one and renaming it skips the cleanup above, and a
    web server serving the folder would otherwise publish them. Returns how
    many were removed.
    """
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than
    removed = 0
    for path in folder.rglob(".*.tmp"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
