"""The `tfjanitor` command line and its rendering."""

from tfjanitor.cli.main import main

__all__ = ["main"]
