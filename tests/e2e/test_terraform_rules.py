"""Terraform's own rules, checked against the real binary (issue 18.6): an uppercase digest is a digest, an empty
state object is no state, and a workspace's state is fixed with that workspace selected."""

from __future__ import annotations

import pytest

from tests.conftest import BUCKET, TABLE
from tests.e2e.test_terraform_scan import (
    DIGEST_ERROR,
    KEY,
    TLS_NOTE,
    alternative,
    digest_of,
    md5,
    paste_all,
    put_state,
    scan,
    state_bytes,
    wait_until_older_than,
)
from tests.support.awscli import Shell
from tfjanitor.local.emulator import MotoServer

pytestmark = pytest.mark.e2e


def set_digest(tf, value: str, state_key: str = KEY) -> None:
    tf.client("dynamodb").put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{state_key}-md5"}, "Digest": {"S": value}})


def test_an_uppercase_digest_is_checked_like_any_other(terraform, backend: MotoServer, shell: Shell) -> None:
    """A hand-repaired digest in uppercase (PowerShell's Get-FileHash): Terraform accepts it, so tfjanitor does not
    call it malformed; when it is wrong, it is drift, and the fix is conditional on the value exactly as stored."""
    tf = terraform()
    tf.init()
    tf.apply("one")
    set_digest(tf, digest_of(tf).upper())
    assert "No changes" in tf.plan("one").output  # Terraform reads it: hex.DecodeString takes any case
    clean = scan(backend)
    assert clean.code == 0 and clean.kinds() == [TLS_NOTE], clean.stdout

    edited = state_bytes(tf).replace(b'"serial": 1,', b'"serial": 7,', 1)
    put_state(tf, edited)
    stored = "0" * 31 + "A"  # uppercase, and not the object's MD5
    set_digest(tf, stored)
    broken = tf.plan("one", check=False)
    assert not broken.ok and DIGEST_ERROR in broken.output  # Terraform compares it: a mismatch

    drift = scan(backend)
    assert drift.code == 1 and drift.kinds() == ["digest_drift", TLS_NOTE], drift.stdout
    finding = drift.findings[0]
    assert finding["details"]["stored_md5"] == stored and finding["details"]["actual_md5"] == md5(edited)
    paste_all(shell, tf, finding["details"]["commands"])  # conditional on "000...0A", exactly as stored
    assert digest_of(tf) == md5(edited)
    assert tf.plan("one").ok


def test_an_empty_state_object_is_no_state_and_the_printed_fixes_work(terraform, backend: MotoServer, shell: Shell) -> None:
    """A 0-byte object: every digest mismatches (even the MD5 of nothing). In the versioned bucket the fix restores
    Terraform's last write; removing the digest is the alternative for a state meant to be empty."""
    tf = terraform()
    tf.init()
    tf.apply("one")
    put_state(tf, b"")
    broken = tf.plan("one", check=False)
    assert not broken.ok and DIGEST_ERROR in broken.output

    drift = scan(backend)
    assert drift.code == 1 and drift.kinds() == ["digest_drift", TLS_NOTE], drift.stdout
    finding = drift.findings[0]
    assert finding["details"]["empty_object"] is True and finding["details"]["actual_md5"] == ""
    assert "is empty (0 bytes)" in finding["message"]
    commands = "\n".join(finding["details"]["commands"])
    assert "put-item" not in commands  # never the MD5 of nothing: Terraform compares no checksum with it
    assert "copy-object" in commands  # Terraform's last write, found among the versions
    paste_all(shell, tf, finding["details"]["commands"])
    assert "No changes" in tf.plan("one").output
    assert scan(backend).kinds() == [TLS_NOTE]

    put_state(tf, b"")  # emptied again, this time on purpose: remove the digest
    finding = scan(backend).findings[0]
    paste_all(shell, tf, alternative(finding, "meant to be empty"))
    planned = tf.plan("one", check=False)
    assert planned.ok and DIGEST_ERROR not in planned.output, planned.output  # an empty state: it plans to create


def test_a_stale_lock_of_a_workspace_is_released_with_that_workspace_selected(terraform, backend: MotoServer, shell: Shell) -> None:
    tf = terraform()
    tf.init()
    tf.apply("one")
    tf.workspace_new("staging")
    killed = tf.start_apply_and_kill("two", workspace="staging")
    tf.workspace_select("default")  # the engineer's working directory is on another workspace
    wait_until_older_than(killed.lock["Created"], 1.0)
    stale = scan(backend, "--stale-after", "1s")
    [finding] = [f for f in stale.findings if f["kind"] == "stale_lock"]
    assert finding["key"] == f"env:/staging/{KEY}"
    assert "with workspace staging selected (terraform workspace select staging)" in " ".join(finding["details"]["fix"])
    release = alternative(finding, "Terraform's own release")
    assert release == ["terraform workspace select staging", f"terraform force-unlock -force -- {killed.lock['ID']}"]
    paste_all(shell, tf, release)
    assert tf.lock_item("staging") is None
    assert tf.apply("three").ok
