"""Pure judgement over what was read: findings from lock items, digests, object facts and settings. No I/O."""
