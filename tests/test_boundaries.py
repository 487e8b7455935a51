"""The package's shape, read from its source: which module may import what.

Each third-party library is imported by one module (or one package), so
replacing it touches one place and its errors are translated at that
boundary; the I/O adapters never import each other, and the pure modules
import no adapter. These rules were kept by hand; here they are checked.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "aggregator"

#: Library (top-level import name) → the module or package of ours that alone imports it.
OWNERS: dict[str, set[str]] = {
    "aiohttp": {"fetch"},
    "yarl": {"fetch"},
    "brotli": {"fetch"},
    "feedparser": {"parse"},
    "lxml": {"fastparse"},
    "nh3": {"clean"},
    "slugify": {"identity"},
    "zlib_ng": {"compact"},
    # Alembic's migration scripts describe the schema in SQLAlchemy's terms too.
    "sqlalchemy": {"storage", "migrations"},
    "alembic": {"storage", "migrations"},
    "feedgen": {"publish"},
    "jinja2": {"digest"},
    "markupsafe": {"digest"},
    "pydantic": {"config"},
    "pydantic_core": {"config"},
    "ruamel": {"config"},
    "apscheduler": {"scheduler"},
    "click": {"cli"},
    "rich": {"cli"},
}
ADAPTERS = {"config", "fetch", "storage", "publish", "digest"}
PURE = {"clean", "identity", "decide", "paging"}


def owner(path: Path) -> str:
    """The module, or the subpackage, a file of ours belongs to: storage/ingest.py → storage."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (lazy imports included), absolute names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            if node.module == "aggregator":  # from aggregator import core
                names.update(f"aggregator.{alias.name}" for alias in node.names)
    return names


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_each_library_is_imported_by_its_one_module() -> None:
    importers: dict[str, set[str]] = defaultdict(set)
    for path in sources():
        for name in imported(path):
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in {"aggregator", "__future__"}:
                importers[top].add(owner(path))
    unknown = {library: found for library, found in importers.items() if library not in OWNERS}
    assert not unknown, (
        f"a new library: give it one module and name that module in OWNERS: {unknown}"
    )
    strays = {
        library: found - OWNERS[library]
        for library, found in importers.items()
        if found - OWNERS[library]
    }
    assert not strays, f"imported outside the module that owns it: {strays}"


def test_adapters_import_no_other_adapter_and_pure_modules_import_none() -> None:
    crossings = []
    for path in sources():
        here = owner(path)
        ours = {name.split(".")[1] for name in imported(path) if name.startswith("aggregator.")}
        if here in ADAPTERS:
            crossings += [(here, other) for other in ours & ADAPTERS if other != here]
        if here in PURE:
            crossings += [(here, other) for other in ours - PURE - {"models", "errors"}]
    assert not crossings, crossings


def test_the_checks_read_real_imports() -> None:
    """The rules above would pass on a reader that found nothing: it finds what is there."""
    assert "aiohttp" in {n.split(".")[0] for n in imported(PACKAGE / "fetch.py")}
    assert "aggregator.storage" in imported(PACKAGE / "core.py")
    assert owner(PACKAGE / "storage" / "ingest.py") == "storage"
    assert "sqlalchemy" in {n.split(".")[0] for n in imported(PACKAGE / "storage" / "rows.py")}
