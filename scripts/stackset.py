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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "layers" / "tfjanitor"))

from tfjanitor.commands import shell_line  # noqa: E402
from tfjanitor.local.stack import archive, plain_template  # noqa: E402  (SAM's translator, also what the emulator deploys)

__all__ = ["main", "plain_template", "stackset_commands", "upload_commands", "zip_artifacts"]


def zip_artifacts(build_dir: Path, names: list[str], out: Path) -> list[Path]:
    """One zip per function / layer, from `sam build`'s output (a layer's zip holds python/...)."""
    out.mkdir(parents=True, exist_ok=True)
    zips = []
    for name in names:
        src = build_dir / name
        if not src.is_dir():
            raise SystemExit(f"{src} is missing: run `make build` (sam build) first")
        target = out / f"{name}.zip"
        target.write_bytes(archive(src))
        zips.append(target)
    return zips


def upload_commands(zips: list[Path], regions: list[str], prefix: str, key_prefix: str) -> list[str]:
    lines = []
    for region in regions:
        bucket = f"{prefix}-{region}"
        lines.append(shell_line(["aws", "s3", "mb", f"s3://{bucket}", "--region", region]))
        lines += [shell_line(["aws", "s3", "cp", str(z), f"s3://{bucket}/{key_prefix}/{z.name}", "--region", region]) for z in zips]
    return lines


def stackset_commands(template: Path, regions: list[str], ou: str, prefix: str, key_prefix: str) -> list[str]:
    return [
        shell_line(
            [
                "aws",
                "cloudformation",
                "create-stack-set",
                "--stack-set-name",
                "tfjanitor",
                "--template-body",
                f"file://{template}",
                "--permission-model",
                "SERVICE_MANAGED",
                "--auto-deployment",
                "Enabled=true,RetainStacksOnAccountRemoval=false",
                "--capabilities",
                "CAPABILITY_IAM",
                "CAPABILITY_NAMED_IAM",
                "--parameters",
                f"ParameterKey=ArtifactBucketPrefix,ParameterValue={prefix}",
                f"ParameterKey=ArtifactKeyPrefix,ParameterValue={key_prefix}",
                "ParameterKey=StateBucketNames,ParameterValue=your-state-bucket",
                "ParameterKey=AlertEmail,ParameterValue=you@example.com",
            ]
        ),
        shell_line(
            [
                "aws",
                "cloudformation",
                "create-stack-instances",
                "--stack-set-name",
                "tfjanitor",
                "--deployment-targets",
                f"OrganizationalUnitIds={ou}",
                "--regions",
                *regions,
                "--operation-preferences",
                "RegionConcurrencyType=PARALLEL,FailureToleranceCount=0,MaxConcurrentCount=5",
            ]
        ),
    ]


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
