"""The package's own imports follow its layers: layers -> models -> data -> engine -> tasks -> export -> cli.

Read from the source with ``ast`` (every import, at module level or inside a function), so a new import that breaks
the direction fails here before it shows up as a slow start or an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "botnet"
MAX_LINES = 450

# The part of the package each top-level name belongs to, lowest first; a part may import only parts below it.
ORDER = ["files", "_lazy", "layers", "models", "data", "engine", "classification", "detection", "export", "cli"]
RANK = {name: i for i, name in enumerate(ORDER)}
RANK["detection"] = RANK["classification"]  # the two tasks are siblings: same level, and neither imports the other
RANK["__init__"] = RANK["__main__"] = len(ORDER)  # the package's own entry points re-export from everything


def part_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(path: Path) -> set[str]:
    """The top-level parts of botnet imported anywhere in ``path`` (relative and absolute imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    if path.name == "__init__.py":
        package = path.relative_to(SRC.parent).parts[:-1]
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = (*base, *(node.module.split(".") if node.module else ()))
                names = [(*target, a.name) for a in node.names] if not node.module else [target]
            else:
                names = [tuple(node.module.split("."))]
        elif isinstance(node, ast.Import):
            names = [tuple(a.name.split(".")) for a in node.names]
        else:
            continue
        for name in names:
            if name[0] == "botnet" and len(name) > 1:
                parts.add(name[1])
    return parts


SOURCES = sorted(SRC.rglob("*.py"))


def test_the_walk_finds_the_package():
    assert {part_of(p) for p in SOURCES} >= set(ORDER)
    assert imported_parts(SRC / "cli" / "main.py") >= {"engine"}
    assert imported_parts(SRC / "detection" / "trainer.py") >= {"engine", "data", "detection"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down_the_layers(path):
    part = part_of(path)
    wrong = sorted(p for p in imported_parts(path) - {part} if p in RANK and RANK[p] >= RANK[part])
    assert not wrong, f"{path.relative_to(SRC)} ({part}) imports {wrong}: the order is {' -> '.join(ORDER)}"


def test_tasks_are_siblings_and_nothing_imports_the_cli():
    for path in SOURCES:
        part, parts = part_of(path), imported_parts(path)
        if part != "cli":
            assert "cli" not in parts or path.name == "__main__.py", path
        if part in ("classification", "detection"):
            assert ({"classification", "detection"} - {part}).isdisjoint(parts), path
        if part == "engine":
            assert {"classification", "detection", "export"}.isdisjoint(parts), path
        if part == "layers":
            assert "models" not in parts, path
        if part == "models":
            assert {"data", "engine", "classification", "detection"}.isdisjoint(parts), path


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SRC)))
def test_files_stay_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines; split it by concept (at most {MAX_LINES})"
