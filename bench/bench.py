"""``python bench/bench.py [ARGS]``: the same as ``python -m bench [ARGS]`` from the repository's root (bench/cli.py)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repository's root, not bench/: `bench` is the package
    from bench.cli import main

    sys.exit(main())
