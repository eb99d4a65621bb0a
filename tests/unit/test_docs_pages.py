"""The docs site and the front door: generated pages match what they are generated from (scripts/docs.py), the
README stays short, and its links into the docs reach pages and sections that exist."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 200


def docs_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_script", ROOT / "scripts" / "docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_script"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def anchors(page: Path) -> set[str]:
    """The anchors the docs site (Python-Markdown's toc) and GitHub make for a page's headings."""
    found = set()
    in_code = False
    for line in page.read_text().splitlines():
        in_code = in_code != line.startswith("```")
        if not in_code and (match := re.match(r"^#{1,6} (.+)$", line)):
            found.add(re.sub(r"[^\w\- ]", "", match[1].strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", ["parameters", "cost", "performance"])
def test_a_generated_page_is_what_make_docs_writes(page: str) -> None:
    path, make = docs_script().PAGES[page]
    assert path.read_text() == make(), f"{path.relative_to(ROOT)} is stale: run make docs"


def test_the_readme_is_a_front_door_at_most_200_lines() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_LIMIT, f"README.md has {len(lines)} lines: move reference material into docs/"
    first_screen = "\n".join(lines[:40])
    assert "make demo" in first_screen and "make test" in first_screen and "unlock --mine" in first_screen


def test_the_readmes_links_into_the_docs_reach_pages_and_sections_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]+)(?:#([^)\s]+))?\)", (ROOT / "README.md").read_text())
    assert len(links) >= 10
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    in_nav = set(re.findall(r"[\w-]+\.md", str(nav)))
    for target, anchor in links:
        page = ROOT / target
        assert page.is_file(), f"README.md links to {target}, which does not exist"
        assert page.name in in_nav, f"{target} is not in mkdocs.yml's nav"
        if anchor:
            assert anchor in anchors(page), f"README.md links to {target}#{anchor}: no such section"


def test_every_docs_page_is_in_the_nav_and_every_page_in_the_nav_exists() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    in_nav = set(re.findall(r"[\w-]+\.md", str(nav)))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert in_nav == pages
