"""Deploying to every account (issue 12.1-12.2): the read-only role and the StackSet template."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
READ_PREFIXES = ("Get", "List", "Describe", "Scan", "BatchGet")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=300, check=False)


def test_reader_role_grants_only_reads_to_one_trusted_principal() -> None:
    doc, problems = decode_str((ROOT / "roles" / "reader.yaml").read_text())
    assert not problems and "Transform" not in doc
    role = doc["Resources"]["ReaderRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": "TrustedPrincipalArn"}} and trust["Action"] == "sts:AssumeRole"
    actions = [a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]]
    assert actions and all(a.split(":", 1)[1].startswith(READ_PREFIXES) for a in actions), actions
    assert all(s["Effect"] == "Allow" for p in role["Policies"] for s in p["PolicyDocument"]["Statement"])
    assert [r for r in doc["Resources"].values() if r["Type"] != "AWS::IAM::Role"] == []
    result = lint(ROOT / "roles" / "reader.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def stackset():
    spec = importlib.util.spec_from_file_location("stackset", ROOT / "scripts" / "stackset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stackset_template_is_plain_cloudformation_with_code_per_region(stackset, tmp_path: Path) -> None:
    assert stackset.main(["--template-only", "--out", str(tmp_path)]) == 0
    out = tmp_path / "template.yaml"
    doc = json.loads(out.read_text())
    assert "Transform" not in doc
    assert not [r for r in doc["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]
    codes = [
        r["Properties"].get("Code") or r["Properties"].get("Content")
        for r in doc["Resources"].values()
        if r["Type"] in ("AWS::Lambda::Function", "AWS::Lambda::LayerVersion")
    ]
    assert len(codes) == 4
    assert all(c["S3Bucket"] == {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"} for c in codes)
    result = lint(out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stackset_commands_upload_to_each_region_and_target_the_ou(stackset, tmp_path: Path) -> None:
    zips = [tmp_path / "SweeperFunction.zip"]
    uploads = stackset.upload_commands(zips, ["us-east-1", "eu-west-1"], "acme-art", "tfjanitor/1")
    assert f"aws s3 cp {zips[0]} s3://acme-art-eu-west-1/tfjanitor/1/SweeperFunction.zip --region eu-west-1" in uploads
    create, instances = stackset.stackset_commands(tmp_path / "t.yaml", ["us-east-1"], "ou-ab12-cd34ef56", "acme-art", "x")
    assert "--permission-model SERVICE_MANAGED" in create and "Enabled=true" in create
    assert "OrganizationalUnitIds=ou-ab12-cd34ef56" in instances
