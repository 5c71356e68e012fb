"""The documentation names only what exists: every repository path and every module, class or function
the README and ``docs/`` name, and every link of the README (with its anchor).

``make docs`` builds the site strictly (broken links between pages fail it); this covers what MkDocs
cannot see: the code the pages name, and the README, which is not part of the site.
"""

from __future__ import annotations

import glob
import importlib
import re
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Repository paths are written from the root: they start with a top-level directory or are a root file.
TOP_DIRS = ("ops/", "worker/", "producers/", "schemas/", "tests/", "docs/", ".ci/")
ROOT_FILES = frozenset({"Makefile", "pyproject.toml", "mkdocs.yml", "README.md", "CHANGELOG.md"})
# Local copies made from the examples (git-ignored): the docs tell people to create them.
LOCAL_COPIES = frozenset({"ops/deploy/callq.env", "ops/deploy/callq.toml"})
MODULE_NAME = re.compile(r"(?:ops|worker|producers|schemas)(?:\.\w+)+(?<!\.py)")  # `worker.py` is a file


def page_id(page: Path) -> str:
    """A page's path from the repository root, for test ids."""
    return page.relative_to(ROOT).as_posix()


def prose(page: Path) -> str:
    """A page without its fenced code blocks (shell sessions and examples are not references)."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)


def code_spans(page: Path) -> list[str]:
    """The inline code of a page's prose."""
    return re.findall(r"`([^`\n]+)`", prose(page))


def named_paths(page: Path) -> set[str]:
    """Every repository path a page names in inline code."""
    paths = set()
    for span in code_spans(page):
        for token in re.split(r"[\s,]+", span):
            token = token.rstrip(".:;)")
            if (token.startswith(TOP_DIRS) or token in ROOT_FILES) and not re.search(r"[{<…]", token):
                paths.add(token)
    return paths


def exists(path: str) -> bool:
    """Whether a path (or, for a glob, at least one path) exists in the repository."""
    if path in LOCAL_COPIES:
        return True
    if "*" in path:
        return bool(glob.glob(path, root_dir=ROOT))
    return (ROOT / path).exists()


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_named_path_exists(page: Path) -> None:
    """Every file or directory a page names (`schemas/states.py`, `ops/deploy/`) is in the repository."""
    missing = sorted(path for path in named_paths(page) if not exists(path))
    assert not missing, f"{page_id(page)} names paths that do not exist: {missing}"


def resolves(name: str) -> bool:
    """Whether a dotted name is a module, or an attribute reached from the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_named_module_and_object_exists(page: Path) -> None:
    """Every dotted name a page gives in inline code (`worker.policy.classify.classify`) imports."""
    names = {span.removesuffix("()") for span in code_spans(page)}
    dotted = sorted(name for name in names if MODULE_NAME.fullmatch(name) and "__main__" not in name)
    missing = [name for name in dotted if not resolves(name)]
    assert not missing, f"{page_id(page)} names what does not exist: {missing}"


def github_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (outside code fences)."""
    anchors = set()
    for line in prose(page).splitlines():
        if heading := re.match(r"#{1,6} (.+)", line):
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def test_readme_links_resolve() -> None:
    """Every relative link of the README reaches a file or directory, and a Markdown page's anchor is
    one of its headings."""
    readme = ROOT / "README.md"
    links = re.findall(r"\]\(([^)\s]+)\)", prose(readme))
    assert any(link.startswith("docs/") for link in links)
    broken = []
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (readme.parent / target).resolve() if target else readme
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in github_anchors(path)):
            broken.append(link)
    assert not broken, f"README.md links to what does not exist: {broken}"


def test_a_broken_reference_is_caught(tmp_path: Path) -> None:
    """The checks above are not vacuous: a missing path and a missing name are found."""
    page = tmp_path / "page.md"
    page.write_text("See `schemas/nothing_here.py` and `worker.policy.classify.no_such_thing`.\n")
    assert named_paths(page) == {"schemas/nothing_here.py"} and not exists("schemas/nothing_here.py")
    assert not resolves("worker.policy.classify.no_such_thing")
    assert resolves("worker.policy.classify.classify")
