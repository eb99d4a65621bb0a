"""A Terraform working directory as ``terraform init`` leaves it: its backend and the state it uses (pure).

``terraform init`` records the initialised backend in ``<data dir>/terraform.tfstate`` (the data dir is
``.terraform``, or ``TF_DATA_DIR`` relative to the working directory), as JSON::

    {"version": 3, "terraform_version": "1.11.4",
     "backend": {"type": "s3", "config": {"bucket": ..., "key": ..., "region": ..., ...}, "hash": 2856324921}}

Every argument of the s3 backend is there, ``null`` when not set; values given with ``-backend-config`` are
merged in. OpenTofu writes the same file. The selected workspace is ``TF_WORKSPACE`` if set, else the trimmed
content of ``<data dir>/environment``, else ``default`` (Terraform's ``Meta.WorkspaceOverridden``). The default
workspace keeps its state at ``key``; workspace W at ``path.Join(workspace_key_prefix, W, key)`` (the s3
backend's ``path``; prefix ``env:`` when not set; Go's ``path.Join`` drops empty parts and cleans the result).

Nothing here reads a file: callers pass the texts (``tfjanitor.release.machine.read_working_dir`` reads them).
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

DATA_DIR = ".terraform"
DATA_DIR_ENV = "TF_DATA_DIR"
WORKSPACE_ENV = "TF_WORKSPACE"
BACKEND_FILE = "terraform.tfstate"  # inside the data dir
ENVIRONMENT_FILE = "environment"  # inside the data dir
DEFAULT_WORKSPACE = "default"
DEFAULT_WORKSPACE_KEY_PREFIX = "env:"
BACKEND_STATE_VERSION = 3
FILE_LIMIT = 1024 * 1024  # bytes read of either file: Terraform's are a few KB

# What Go's url.PathEscape leaves alone: Terraform accepts a workspace name only if escaping changes nothing.
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9\-._~$&+,:;=@]+")


class WorkdirError(ValueError):
    """The working directory has no initialised s3 backend tfjanitor can read."""


@dataclass(frozen=True)
class S3Backend:
    """The s3 backend's arguments that say where a state's locks are."""

    bucket: str
    key: str
    region: str | None = None
    dynamodb_table: str | None = None
    use_lockfile: bool = False
    workspace_key_prefix: str = DEFAULT_WORKSPACE_KEY_PREFIX
    s3_endpoint: str | None = None  # endpoints.s3, or the deprecated endpoint
    dynamodb_endpoint: str | None = None  # endpoints.dynamodb, or the deprecated dynamodb_endpoint
    profile: str | None = None

    def state_key(self, workspace: str) -> str:
        """The S3 key of ``workspace``'s state (what its LockID and ``.tflock`` are named after)."""
        if workspace == DEFAULT_WORKSPACE:
            return self.key
        return go_path_join(self.workspace_key_prefix, workspace, self.key)


@dataclass(frozen=True)
class WorkingDir:
    backend: S3Backend
    workspace: str
    workspace_from: str  # TF_WORKSPACE, the environment file, or "default" (neither)

    @property
    def state_key(self) -> str:
        return self.backend.state_key(self.workspace)


def go_path_clean(path: str) -> str:
    """Go's ``path.Clean``: like ``posixpath.normpath``, except that a leading ``//`` becomes ``/``."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def go_path_join(*parts: str) -> str:
    """Go's ``path.Join``: the non-empty parts joined with ``/``, cleaned; ``""`` if every part is empty."""
    kept = [p for p in parts if p]
    return go_path_clean("/".join(kept)) if kept else ""


def valid_workspace_name(name: str) -> bool:
    return _WORKSPACE_NAME.fullmatch(name) is not None


def _optional_str(config: dict[str, Any], name: str, where: str) -> str | None:
    value = config.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise WorkdirError(f"{where}: backend argument {name} is a {type(value).__name__}, not a string")
    return value


def parse_backend_state(text: str, where: str = BACKEND_FILE) -> S3Backend:
    """The s3 backend recorded in ``.terraform/terraform.tfstate``; :class:`WorkdirError` for anything else
    (another backend, a file terraform init does not write)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WorkdirError(f"{where}: not JSON ({exc.__class__.__name__}): not what terraform init writes") from None
    if not isinstance(doc, dict):
        raise WorkdirError(f"{where}: not a JSON object: not what terraform init writes")
    if doc.get("version") != BACKEND_STATE_VERSION:
        raise WorkdirError(
            f"{where}: version {doc.get('version')!r}, not {BACKEND_STATE_VERSION}: not a backend state tfjanitor knows"
        )
    backend = doc.get("backend")
    if not isinstance(backend, dict):
        raise WorkdirError(f"{where}: no backend recorded (a local state?): tfjanitor unlock --mine needs an s3 backend")
    kind = backend.get("type")
    if kind != "s3":
        raise WorkdirError(f"{where}: the backend is {kind!r}, not s3: tfjanitor only knows the s3 backend's locks")
    config = backend.get("config")
    if not isinstance(config, dict):
        raise WorkdirError(f"{where}: the s3 backend has no config")
    bucket, key = _optional_str(config, "bucket", where), _optional_str(config, "key", where)
    if not bucket or not key:
        raise WorkdirError(f"{where}: the s3 backend has no {'bucket' if not bucket else 'key'}")
    use_lockfile = config.get("use_lockfile")
    if use_lockfile is not None and not isinstance(use_lockfile, bool):
        raise WorkdirError(f"{where}: backend argument use_lockfile is a {type(use_lockfile).__name__}, not a bool")
    endpoints = config.get("endpoints")
    if endpoints is not None and not isinstance(endpoints, dict):
        raise WorkdirError(f"{where}: backend argument endpoints is a {type(endpoints).__name__}, not an object")
    endpoints = endpoints or {}
    prefix = _optional_str(config, "workspace_key_prefix", where)
    return S3Backend(
        bucket=bucket,
        key=key,
        region=_optional_str(config, "region", where) or None,
        dynamodb_table=_optional_str(config, "dynamodb_table", where) or None,
        use_lockfile=bool(use_lockfile),
        workspace_key_prefix=DEFAULT_WORKSPACE_KEY_PREFIX if prefix is None else prefix,
        s3_endpoint=_optional_str(endpoints, "s3", f"{where}: endpoints") or _optional_str(config, "endpoint", where) or None,
        dynamodb_endpoint=(
            _optional_str(endpoints, "dynamodb", f"{where}: endpoints") or _optional_str(config, "dynamodb_endpoint", where) or None
        ),
        profile=_optional_str(config, "profile", where) or None,
    )


def selected_workspace(environment: str | None, tf_workspace: str | None) -> tuple[str, str]:
    """(workspace, where it came from): ``TF_WORKSPACE`` if set, else the environment file's trimmed text, else
    ``default``. A name Terraform would refuse is a :class:`WorkdirError`."""
    if tf_workspace:
        name, source = tf_workspace, WORKSPACE_ENV
    elif environment is not None and environment.strip():
        name, source = environment.strip(), f"{DATA_DIR}/{ENVIRONMENT_FILE}"
    else:
        return DEFAULT_WORKSPACE, DEFAULT_WORKSPACE
    if not valid_workspace_name(name):
        raise WorkdirError(f"the workspace name from {source} is not one Terraform accepts: {name!r}")
    return name, source


def working_dir(backend_state: str, environment: str | None, tf_workspace: str | None, where: str = BACKEND_FILE) -> WorkingDir:
    backend = parse_backend_state(backend_state, where)
    workspace, source = selected_workspace(environment, tf_workspace)
    return WorkingDir(backend, workspace, source)
