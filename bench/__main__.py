"""``python -m bench``: the benchmark (bench/cli.py)."""

import sys

from bench.cli import main

sys.exit(main(prog="python -m bench"))
