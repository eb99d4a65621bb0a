"""Releasing stale locks: the conditional delete, by hand (`tfjanitor unlock`) and automatically."""
