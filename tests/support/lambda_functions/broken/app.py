"""A handler module whose import fails: the runtime posts /init/error (tests/integration/test_lambda_box.py)."""

raise RuntimeError("this module cannot be imported")


def lambda_handler(event: object, context: object) -> None:  # pragma: no cover (never reached)
    return None
