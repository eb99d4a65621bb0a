"""The fix commands every check builds from, and how a finding gets them (pure code).

Commands are argument lists, turned into shell text only by ``commands.shell_line``: keys, lock IDs and names
from a lock table are hostile input, and a command line pasted at 3 a.m. must run exactly what it says. Every
write here is conditional on the value the check saw (a digest, an item's attributes, an object's ETag).
"""

from __future__ import annotations

from typing import Any

from tfjanitor.commands import aws, json_arg, option, representable, s3api_objects
from tfjanitor.model import Alternative, Finding
from tfjanitor.terraform import workspace_of, writers

Argv = list[str]


def working_dir(bucket: str, key: str) -> str:
    """Where Terraform's own commands for this state run: the configuration whose backend has this bucket and key,
    with its workspace selected (named when the key is a workspace's state under the default prefix)."""
    ws = workspace_of(key)
    if ws is not None:
        return (
            f'the working directory of the configuration whose backend has bucket = "{bucket}" and key = "{ws[1]}", '
            f"with workspace {ws[0]} selected (terraform workspace select {ws[0]})"
        )
    return (
        f'the working directory of the configuration whose backend has bucket = "{bucket}" and key = "{key}" (a '
        "workspace's state under a workspace_key_prefix of your own: select that workspace first)"
    )


def select_workspace(key: str) -> list[Argv]:
    """``terraform workspace select NAME`` when the key is a workspace's state (default prefix), else nothing."""
    ws = workspace_of(key)
    return [["terraform", "workspace", "select", ws[0]]] if ws is not None else []


def tools(version: str) -> str:
    """Which CLI to name: LockInfo does not say whether Terraform or OpenTofu wrote it (see terraform.writers)."""
    return "terraform" if writers(version) == ("terraform",) else "terraform (tofu for OpenTofu: the same commands)"


def with_fix(finding: Finding, *options: tuple[str, list[Argv]]) -> Finding:
    """Give ``finding`` its commands: ``options`` are (label, commands), the recommended one first.

    An option that no command line can pass (a NUL in an argument) is left out; the next one is then
    recommended.
    """
    usable = [(label, cmds) for label, cmds in options if cmds and all(representable(c) for c in cmds)]
    if usable:
        finding.commands = usable[0][1]
        finding.alternatives = [Alternative(label, cmds) for label, cmds in usable[1:]]
    return finding


def item_key(lock_id: str) -> str:
    return json_arg({"LockID": {"S": lock_id}})


def dynamodb(operation: str, region: str, profile: str | None, table: str, *args: str) -> Argv:
    """``aws dynamodb OPERATION`` on one table."""
    return aws("dynamodb", operation, region, profile, *option("--table-name", table), *args)


def force_unlock_command(lock_id: str) -> Argv:
    return ["terraform", "force-unlock", "-force", "--", lock_id]


def digest_put(region: str, profile: str | None, table: str, digest_id: str, digest: str, seen: str) -> Argv:
    """Store ``digest``, only if the item still holds the digest the sweep saw."""
    return dynamodb(
        "put-item",
        region,
        profile,
        table,
        "--item",
        json_arg({"LockID": {"S": digest_id}, "Digest": {"S": digest}}),
        "--condition-expression",
        "Digest = :d",
        "--expression-attribute-values",
        json_arg({":d": {"S": seen}}),
    )


def digest_delete(region: str, profile: str | None, table: str, digest_id: str, seen: str) -> Argv:
    """Delete a digest item, only if it still holds the digest the sweep saw."""
    return dynamodb(
        "delete-item",
        region,
        profile,
        table,
        "--key",
        item_key(digest_id),
        "--condition-expression",
        "Digest = :d",
        "--expression-attribute-values",
        json_arg({":d": {"S": seen}}),
    )


def list_versions(region: str, profile: str | None, bucket: str, key: str) -> Argv:
    return s3api_objects("list-object-versions", region, profile, {"Bucket": bucket, "Prefix": key})


def restore_version(region: str, profile: str | None, bucket: str, key: str, version_id: str, etag: str) -> Argv:
    """Copy ``version_id`` over the object, only if the object is still the one the sweep saw (CopyObject
    ``If-Match``: the destination's current ETag)."""
    return s3api_objects(
        "copy-object",
        region,
        profile,
        {"Bucket": bucket, "Key": key, "CopySource": {"Bucket": bucket, "Key": key, "VersionId": version_id}, "IfMatch": f'"{etag}"'},
    )


def create_lock_table_command(region: str, table: str, profile: str | None = None) -> Argv:
    """The one command that makes a Terraform lock table (key LockID, String), protected from deletion."""
    return dynamodb(
        "create-table",
        region,
        profile,
        table,
        "--attribute-definitions",
        json_arg([{"AttributeName": "LockID", "AttributeType": "S"}]),
        "--key-schema",
        json_arg([{"AttributeName": "LockID", "KeyType": "HASH"}]),
        "--billing-mode",
        "PAY_PER_REQUEST",
        "--deletion-protection-enabled",
    )


def delete_item_exactly(region: str, profile: str | None, table: str, lock_id: str, attributes: dict[str, Any]) -> Argv:
    """Delete an item with neither Info nor Digest, only if it still has neither and every other attribute as seen."""
    names = sorted(attributes)
    condition = " AND ".join(
        ["attribute_not_exists(Info)", "attribute_not_exists(Digest)", *(f"#a{i} = :a{i}" for i in range(len(names)))]
    )
    args = ["--condition-expression", condition]
    if names:
        args += [
            "--expression-attribute-names",
            json_arg({f"#a{i}": name for i, name in enumerate(names)}),
            "--expression-attribute-values",
            json_arg({f":a{i}": attributes[name] for i, name in enumerate(names)}),
        ]
    return dynamodb("delete-item", region, profile, table, "--key", item_key(lock_id), *args)
