"""`make docs`: write the docs pages generated from code, one function per page.

    python scripts/docs.py [PAGE ...]     # every page when none is named
    python scripts/docs.py --check        # exit 1 naming each page that is stale (tests/unit/test_docs.py does the same)

A generated page is never edited by hand: change what it is generated from, then run ``make docs``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "tfjanitor")]

from tfjanitor import catalog  # noqa: E402


def kinds() -> str:
    """docs/kinds.md: every finding kind, from tfjanitor/catalog.py."""
    return catalog.markdown()


# page name -> (its file, what writes it)
PAGES: dict[str, tuple[Path, Callable[[], str]]] = {
    "kinds": (ROOT / "docs" / "kinds.md", kinds),
}


def stale() -> list[str]:
    """The pages whose file is not what their generator writes now."""
    return [name for name, (path, make) in PAGES.items() if not path.is_file() or path.read_text() != make()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", metavar="PAGE", help=f"one of {', '.join(PAGES)} (default: every page)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    args = parser.parse_args(argv)
    if unknown := [name for name in args.pages if name not in PAGES]:
        parser.error(f"no page {', '.join(unknown)} (pages: {', '.join(PAGES)})")
    if args.check:
        old = stale()
        for name in old:
            print(f"{PAGES[name][0].relative_to(ROOT)} is stale: run make docs", file=sys.stderr)
        return 1 if old else 0
    for name in args.pages or PAGES:
        path, make = PAGES[name]
        path.write_text(make())
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
