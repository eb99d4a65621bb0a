"""The readers: the sweep (lock tables and buckets), the audit (settings and peers), the stream monitor."""
