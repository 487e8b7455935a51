"""Reading feedparser's test corpus in ../shared. Contains no business logic."""

from __future__ import annotations

import re
from pathlib import Path

HEADER_LINE = re.compile(rb"^\s*Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.MULTILINE)
LEADING_COMMENT = re.compile(rb"<!--(.*?)-->", re.DOTALL)
#: What must never survive sanitising: script elements, javascript: URLs, event handlers.
SCRIPT_PAYLOAD = re.compile(r"<script|javascript:|<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


def corpus_headers(body: bytes) -> dict[str, str]:
    """The `Header:` lines of the file's leading XML comment, as lower-case keys."""
    comment = LEADING_COMMENT.search(body[:4096])
    if comment is None:
        return {}
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in HEADER_LINE.findall(comment[1])
    }


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".xml", ".json"))
