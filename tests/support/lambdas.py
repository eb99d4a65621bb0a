"""Loading a function's handler the way Lambda does: its own module, Powertools objects built from the environment."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as a fresh module, after rebuilding the Powertools objects (the test
    has just set the environment: service name, namespace, log level) and forgetting the kept AWS session."""
    from tfjanitor.runtime import execution, observability

    importlib.reload(observability)
    execution.forget_session()  # a new execution environment: its own session and clients
    spec = importlib.util.spec_from_file_location(f"{name}_app", ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
