"""The package's own imports follow its layers: layers -> models -> data -> engine -> tasks -> export -> cli.

Read from the source with ``ast`` (every import, at module level or inside a function), so a new import that breaks
the direction fails here before it shows up as a slow start or an import cycle; and no module imports itself through
others.
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


# ----------------------------------------------------------------------------------------------------------------
# No import cycles


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if path.name == "__init__.py" else parts)


MODULES = {module_name(p): p for p in SOURCES}


def lazy_names(path: Path) -> dict[str, str]:
    """The names a package's ``lazy_exports`` call gives, and the submodule each comes from."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            for key, value in zip(node.args[1].keys, node.args[1].values, strict=True):
                module = ast.literal_eval(key)
                names = ast.literal_eval(value) if isinstance(value, ast.Tuple) else ()
                out.update({n: f"{module_name(path)}.{module or n}" for n in names})
    return out


LAZY = {module_name(p): lazy_names(p) for p in SOURCES if p.name == "__init__.py"}


def imported_modules(path: Path, *, inside_functions: bool) -> set[str]:
    """botnet's modules that importing ``path`` imports (``if TYPE_CHECKING:`` blocks left out), with the names of a
    lazily exporting package resolved to their submodules; without the module's own packages."""
    name, tree = module_name(path), ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)) or (
            not inside_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ):
            skipped |= {id(n) for n in ast.walk(node)}
    targets = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
            continue
        base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
        module = ".".join([*base, *(node.module.split(".") if node.module else [])])
        for a in node.names:
            sub = f"{module}.{a.name}"
            targets.add(sub if sub in MODULES else LAZY.get(module, {}).get(a.name, module))
    found = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 2)} & MODULES.keys()
    return found - {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}


def a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as the modules along it, or [] when there is none."""
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        for target in sorted(graph.get(module, ())):
            if cycle := walk(target, [*path, module]):
                return cycle
        done.add(module)
        return []

    return next((c for m in sorted(graph) if (c := walk(m, []))), [])


def test_no_import_cycles():
    assert a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    graph = {m: imported_modules(p, inside_functions=False) for m, p in MODULES.items()}
    assert "botnet.models.weights.fit" in graph["botnet.detection.backbone"]  # a package's lazy name, resolved
    assert "botnet.models.factory" not in graph["botnet.models.presets"]  # imported inside a function
    assert not a_cycle(graph), " -> ".join(a_cycle(graph))
    # models/ has none either through the imports its functions make when they run (kept there for start-up speed)
    inside = {m: imported_modules(p, inside_functions=True) for m, p in MODULES.items()}
    models = {m: targets for m, targets in inside.items() if m.startswith("botnet.models")}
    assert not a_cycle(models), " -> ".join(a_cycle(models))
