"""`make stackset`: template.yaml as plain CloudFormation for a service-managed StackSet, plus the
commands that upload the code to every region and create the StackSet for an OU.

Service-managed StackSets do not run the AWS::Serverless transform, so SAM CLI's own translator runs
it here, offline. Lambda reads code only from a bucket in the function's region: the output template
takes the code and layer locations as parameters, one bucket per region (`<ArtifactBucketPrefix>-<region>`).

    python scripts/stackset.py [--regions "us-east-1 eu-west-1"] [--ou ou-xxxx-yyyy] [--bucket-prefix NAME]
                               [--build-dir .aws-sam/build] [--out build/stackset] [--template-only]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "tfjanitor"))

from tfjanitor import __version__  # noqa: E402
from tfjanitor.commands import shell_line  # noqa: E402

CODE_TYPES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
PLACEHOLDER = "STACKSET-ARTIFACT-BUCKET"


def plain_template(template: Path) -> tuple[dict[str, Any], list[str]]:
    """(the transformed template, the logical IDs whose code it needs)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    doc = yaml_parse(template.read_text())
    artifacts = []
    for name, resource in doc["Resources"].items():
        prop = CODE_TYPES.get(resource["Type"])
        if prop:
            resource["Properties"][prop] = {"Bucket": PLACEHOLDER, "Key": f"{name}.zip"}
            artifacts.append(name)
    # The region only feeds pseudo-parameters SAM resolves at translation; the output keeps AWS::Region refs.
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    out = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session).translate(
        sam_template=doc, parameter_values={}
    )
    out["Parameters"] = {
        "ArtifactBucketPrefix": {
            "Type": "String",
            "Description": "Code buckets, one per region, named <prefix>-<region> (Lambda reads code only from its own region)",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,40}$",
            "ConstraintDescription": "lowercase letters, digits, dots and hyphens (the region is appended)",
        },
        "ArtifactKeyPrefix": {
            "Type": "String", "Default": f"tfjanitor/{__version__}",
            "Description": "Key prefix of the uploaded code in those buckets",
        },
        **out.get("Parameters", {}),
    }
    for resource in out["Resources"].values():
        code = resource.get("Properties", {}).get("Code") or resource.get("Properties", {}).get("Content")
        if isinstance(code, dict) and code.get("S3Bucket") == PLACEHOLDER:
            code["S3Bucket"] = {"Fn::Sub": "${ArtifactBucketPrefix}-${AWS::Region}"}
            code["S3Key"] = {"Fn::Sub": "${ArtifactKeyPrefix}/" + code["S3Key"]}
    assert "Transform" not in out
    return out, artifacts


def zip_artifacts(build_dir: Path, names: list[str], out: Path) -> list[Path]:
    """One zip per function / layer, from `sam build`'s output (a layer's zip holds python/...)."""
    out.mkdir(parents=True, exist_ok=True)
    zips = []
    for name in names:
        src = build_dir / name
        if not src.is_dir():
            raise SystemExit(f"{src} is missing: run `make build` (sam build) first")
        target = out / f"{name}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(src.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    zf.write(path, path.relative_to(src))
        zips.append(target)
    return zips


def upload_commands(zips: list[Path], regions: list[str], prefix: str, key_prefix: str) -> list[str]:
    lines = []
    for region in regions:
        bucket = f"{prefix}-{region}"
        lines.append(shell_line(["aws", "s3", "mb", f"s3://{bucket}", "--region", region]))
        lines += [shell_line(["aws", "s3", "cp", str(z), f"s3://{bucket}/{key_prefix}/{z.name}", "--region", region])
                  for z in zips]
    return lines


def stackset_commands(template: Path, regions: list[str], ou: str, prefix: str, key_prefix: str) -> list[str]:
    return [shell_line([
        "aws", "cloudformation", "create-stack-set", "--stack-set-name", "tfjanitor",
        "--template-body", f"file://{template}", "--permission-model", "SERVICE_MANAGED",
        "--auto-deployment", "Enabled=true,RetainStacksOnAccountRemoval=false",
        "--capabilities", "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM",
        "--parameters", f"ParameterKey=ArtifactBucketPrefix,ParameterValue={prefix}",
        f"ParameterKey=ArtifactKeyPrefix,ParameterValue={key_prefix}",
        "ParameterKey=StateBucketNames,ParameterValue=your-state-bucket",
        "ParameterKey=AlertEmail,ParameterValue=you@example.com",
    ]), shell_line([
        "aws", "cloudformation", "create-stack-instances", "--stack-set-name", "tfjanitor",
        "--deployment-targets", f"OrganizationalUnitIds={ou}", "--regions", *regions,
        "--operation-preferences", "RegionConcurrencyType=PARALLEL,FailureToleranceCount=0,MaxConcurrentCount=5",
    ])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--build-dir", default=str(ROOT / ".aws-sam" / "build"))
    parser.add_argument("--out", default=str(ROOT / "build" / "stackset"))
    parser.add_argument("--regions", default=os.environ.get("REGIONS", "us-east-1 eu-west-1"))
    parser.add_argument("--ou", default=os.environ.get("OU", "ou-xxxx-yyyyyyyy"))
    parser.add_argument("--bucket-prefix", default=os.environ.get("BUCKET_PREFIX", "my-tfjanitor-artifacts"))
    parser.add_argument("--template-only", action="store_true", help="write the template, skip the code zips")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc, artifacts = plain_template(Path(args.template))
    target = out / "template.yaml"
    target.write_text(json.dumps(doc, indent=1) + "\n")  # JSON is YAML: CloudFormation reads either
    print(f"wrote {target} (no Transform; code from <ArtifactBucketPrefix>-<region>)")
    if args.template_only:
        return 0
    zips = zip_artifacts(Path(args.build_dir), artifacts, out / "artifacts")
    key_prefix = doc["Parameters"]["ArtifactKeyPrefix"]["Default"]
    print("\n# 1. Code buckets (one per region), readable by the organization's accounts, then the code:")
    print("#    (add a bucket policy allowing s3:GetObject with aws:PrincipalOrgID = your organization ID)")
    regions = args.regions.split()
    print("\n".join(upload_commands(zips, regions, args.bucket_prefix, key_prefix)))
    print("\n# 2. The StackSet for the OU, deployed to every account in it (and to accounts that join it later):")
    print("\n".join(stackset_commands(target, regions, args.ou, args.bucket_prefix, key_prefix)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
