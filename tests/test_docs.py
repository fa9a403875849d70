"""README.md and docs/*.md stay true: every ``botnet`` command they show parses with the current command line, every
relative link and image resolves (anchors included), and every test or benchmark they name as a source exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def _shell_blocks(text: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang in ("bash", "sh")]


def doc_commands() -> list[tuple[str, str]]:
    """(page, command) for every ``botnet`` command in a bash/sh block: continuations joined, comments cut, the
    ``uv run`` / ``torchrun ... -m`` launcher removed."""
    found = []
    for page in PAGES:
        for block in _shell_blocks(page.read_text()):
            for line in re.sub(r"\\\n\s*", "", block).splitlines():
                for part in line.split(" # ")[0].split("  #")[0].split("&&"):
                    part = part.strip()
                    if "-m botnet " in part:
                        part = "botnet " + part.split("-m botnet ", 1)[1]
                    part = re.sub(r"^uv run (--locked )?(--with \S+ )*", "", part)
                    if part.startswith("botnet"):
                        found.append((page.relative_to(ROOT).as_posix(), part))
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", FENCE.sub("", page.read_text()), re.M)}


def test_there_are_pages_and_commands():
    assert len(PAGES) > 1 and len(doc_commands()) > 40


@pytest.mark.parametrize("page,command", doc_commands(), ids=lambda v: v[:80])
def test_every_command_shown_parses(page, command):
    from botnet.cli import build_parser

    args = shlex.split(command)[1:]
    if "--help" in args or "..." in args:
        pytest.skip("help, or an elided command")
    try:
        build_parser().parse_args(args)
    except SystemExit as exit_:
        pytest.fail(f"{page}: `{command}` does not parse (exit {exit_.code})")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_image_resolves(page):
    text = FENCE.sub("", page.read_text())
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link {target} names a missing file"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: link {target} names a missing heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_named_tests_and_benchmarks_exist(page):
    text = page.read_text()
    for path, name in re.findall(r"\b((?:tests|benchmarks)/[\w/]+\.py)(?:::(\w+))?", text):
        assert (ROOT / path).is_file(), f"{page.name} names {path}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\b", (ROOT / path).read_text(), re.M), f"{page.name}: {path}::{name}"


def test_named_test_functions_exist():
    files = (ROOT / "tests").rglob("test_*.py")
    defined = {name for f in files for name in re.findall(r"^def (test_\w+)", f.read_text(), re.M)}
    for page in PAGES:
        for name in re.findall(r"`(?:[\w/]+\.py::)?(test_\w+)(?![\w.])", page.read_text()):
            assert name in defined, f"{page.name} names the test {name}, which does not exist"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in PAGES[1:]:
        assert f"](docs/{page.name}" in readme, f"docs/{page.name} is not linked from README.md"
