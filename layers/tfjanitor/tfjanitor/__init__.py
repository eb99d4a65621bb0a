"""tfjanitor: stale Terraform locks, digest drift and cross-region lock tables, found and explained."""

__version__ = "0.2.0"
