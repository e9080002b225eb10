"""The direction of imports written in docs/ARCHITECTURE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> top-level modules it must never import
FORBIDDEN = {
    "archive": {"scrapy", "twisted", "prefect", "pipeline", "spiders", "flows", "sqlalchemy"},
    "pipeline": {"scrapy", "twisted", "spiders"},
    "spiders": {"prefect", "flows"},
    "flows": {"scrapy", "twisted", "spiders"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_cli_reaches_up_into_flows() -> None:
    users = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "pipeline").rglob("*.py")
        if "flows" in imported_modules(path)
    ]
    assert users and all(user.startswith("pipeline/cli/") for user in users), users


def test_reading_a_record_imports_no_indexer() -> None:
    """`get` and downloads read one record: they need not import the indexer, the
    extraction libraries or cdxj-indexer (half a second of every `linkarchive get`)."""
    import subprocess
    import sys

    heavy = ["pipeline.indexer", "pipeline.extract", "pipeline.evidence.package", "cdxj_indexer"]
    code = (
        "import sys, pipeline.retrieval, pipeline.storage, archive; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "[]"
