"""Reading exported posts back the way static site generators do. Contains no business logic.

Hexo reads front matter with js-yaml (YAML 1.2), Jekyll with Psych and Hugo
with a Go YAML 1.1-style parser; ruamel.yaml stands in for the first and
PyYAML for the others, so a value that either would misread is caught.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

FRONT_MATTER = re.compile(r"---\n(.*?)\n---\n(?:\n(.*))?", re.DOTALL)


def split_post(text: str) -> tuple[str, str]:
    """Front matter and body of a post; fails the test when the layout is off."""
    match = FRONT_MATTER.fullmatch(text)
    assert match, f"not front matter + body: {text[:200]!r}"
    return match[1], match[2] or ""


def load_yaml_1_2(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def load_yaml_1_1(text: str) -> Any:
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_post(path: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(front matter per YAML 1.2, per YAML 1.1, body) of one exported file."""
    front, body = split_post(path.read_text("utf-8"))
    return load_yaml_1_2(front), load_yaml_1_1(front), body
