"""Hand-made settings for tests of single stages. Contains no business logic."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

from aggregator.models import SiteSettings

BASE = "https://news.example.org/digest/"


def make_site(tmp_path: Path, **overrides: Any) -> SiteSettings:
    values: dict[str, Any] = {
        "title": "Morning Paper",
        "base_url": BASE,
        "output_dir": tmp_path / "out",
        "database_url": "sqlite:///unused.db",
        "timezone": "Asia/Shanghai",
        "digest_time": time(8),
        "interval": timedelta(minutes=30),
        "max_entries": 50,
    }
    values.update(overrides)
    return SiteSettings(**values)
