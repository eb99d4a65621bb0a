"""`make demo`: the whole stack on the embedded emulator, watching real Terraform break and mend a backend.

Story (with `terraform` on PATH; without it, the same story with the exact items Terraform writes):
healthy applies (one with a workspace), a CI job killed mid-apply (stale lock), a state edited by
hand (digest drift), then `terraform force-unlock` and the digest repaired as the alert says.

The stack runs as `tfjanitor local` does: template.yaml's sweeper on a compressed schedule, the
stream monitor on the lock table's stream, alerts through the topic, captured and printed as the
emails you would get. Outputs: demo-output/emails/*.eml and demo-output/dashboard.png.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Final

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from tests.support.builders import lock_info, md5, put_lock, put_state, state_body  # noqa: E402
from tests.support.posture import harden_bucket, harden_table  # noqa: E402
from tfjanitor.commands import shell_line  # noqa: E402
from tfjanitor.local.dashboard import render_dashboard  # noqa: E402
from tfjanitor.local.emulator import MotoServer  # noqa: E402
from tfjanitor.local.runner import LocalStack  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

REGION: Final = "ap-northeast-2"  # Final: its literal type is an S3 LocationConstraint
TABLE, BUCKET = "terraform-state-lock", "tfstate-demo"
OUT = ROOT / "demo-output"
STALE_AFTER = "8s"  # time is compressed: a lock older than 8 s counts as stale
TIME_SCALE = 150  # rate(5 minutes) -> a sweep every 2 s


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def clients(url: str) -> tuple[S3Client, DynamoDBClient]:
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    ddb = boto3.client("dynamodb", endpoint_url=url, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
    return s3, ddb


def create_backend(url: str) -> None:
    s3, ddb = clients(url)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # Set up as the auditor recommends, so its only note is the TLS policy the HTTP emulator cannot serve.
    harden_table(url, TABLE, REGION)
    harden_bucket(url, BUCKET, REGION)
    print(f"    lock table {TABLE} and state bucket {BUCKET} in {REGION} (versioned, private, PITR, deletion protection)")


def wait_for_emails(stack: LocalStack, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(stack.emails) < count and time.monotonic() < deadline:
        stack.step()
        time.sleep(0.25)
    if len(stack.emails) < count:
        print(f"    (expected {count} emails by now, got {len(stack.emails)})")


class TerraformStory:
    def __init__(self, url: str, work: Path):
        from tests.support.terraform import BackendConfig, TerraformProject  # noqa: PLC0415

        self.url = url
        self.net = TerraformProject(work / "network", BackendConfig(endpoint_url=url, key="network/terraform.tfstate"))
        self.app = TerraformProject(work / "app", BackendConfig(endpoint_url=url, key="app/terraform.tfstate"))
        self.ci = TerraformProject(work / "ci-job", BackendConfig(endpoint_url=url, key="ci/terraform.tfstate"))
        self.billing = TerraformProject(work / "billing", BackendConfig(endpoint_url=url, key="billing/terraform.tfstate"))
        self.lock_id = ""

    def healthy(self) -> None:
        for p in (self.net, self.app, self.ci, self.billing):
            p.init()
        self.net.apply("v1")
        self.app.apply("v1")
        self.app.workspace_new("staging")
        self.app.apply("v1")
        self.ci.apply("v1")
        self.billing.apply("v1")

    def kill_apply(self) -> None:
        killed = self.ci.start_apply_and_kill("v2")
        self.lock_id = killed.lock["ID"]
        print(f"    lock {self.lock_id} left by {killed.lock['Who']} on {BUCKET}/ci/terraform.tfstate")

    def edit_state(self) -> None:
        s3, _ = clients(self.url)
        doc = json.loads(s3.get_object(Bucket=BUCKET, Key="billing/terraform.tfstate")["Body"].read())
        doc["serial"] += 1
        s3.put_object(Bucket=BUCKET, Key="billing/terraform.tfstate", Body=json.dumps(doc, indent=2).encode())
        plan = self.billing.plan(check=False, timeout=60)
        line = next((x.strip() for x in plan.output.splitlines() if "does not have the expected content" in x), "")
        print(f"    terraform plan on billing now fails: {line or f'exit {plan.returncode}'}")

    def force_unlock(self) -> None:
        self.ci.force_unlock(self.lock_id)
        print(f"    {shell_line(['terraform', 'force-unlock', '-force', '--', self.lock_id])}   (from the ci-job working directory)")

    def close(self) -> None:
        for p in (self.net, self.app, self.ci, self.billing):
            p.close()


class SyntheticStory:
    """The same story without terraform: the exact items and objects Terraform writes."""

    def __init__(self, url: str):
        self.url = url
        self.s3, self.ddb = clients(url)
        self.lock_id = "5d0c1f7a-6a4b-93e2-0c11-4f2b9e8d7a61"

    def healthy(self) -> None:
        for key in ("network", "app", "env:/staging/app", "ci", "billing"):
            put_state(self.s3, self.ddb, BUCKET, f"{key}/terraform.tfstate", state_body())

    def kill_apply(self) -> None:
        put_lock(
            self.ddb,
            BUCKET,
            "ci/terraform.tfstate",
            lock_info(f"{BUCKET}/ci/terraform.tfstate", lock_id=self.lock_id, who="ci@runner-7"),
        )

    def edit_state(self) -> None:
        self.s3.put_object(Bucket=BUCKET, Key="billing/terraform.tfstate", Body=state_body(2))

    def force_unlock(self) -> None:
        self.ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/ci/terraform.tfstate"}})

    def close(self) -> None:
        pass


def repair_digest(url: str, stack: LocalStack) -> None:
    drift = next(e for e in stack.emails if "Digest drift" in e.subject)
    actual = next(line.split()[-1] for line in drift.plain.splitlines() if line.strip().startswith("Actual MD5:"))
    s3, ddb = clients(url)
    body = s3.get_object(Bucket=BUCKET, Key="billing/terraform.tfstate")["Body"].read()
    assert md5(body) == actual
    ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/billing/terraform.tfstate-md5"}, "Digest": {"S": actual}})
    print(f"    aws dynamodb put-item ... Digest = {actual}, only if still the digest seen   (the command in the alert)")


def metrics_summary(stack: LocalStack) -> None:
    say("metrics the run emitted (what the CloudWatch dashboard shows)")
    last: dict[str, float] = {}
    totals: dict[str, float] = defaultdict(float)
    holds: dict[str, list[float]] = defaultdict(list)
    for m in stack.metrics:
        if m.name == "LockHoldSeconds":
            holds[m.dimensions.get("OperationClass", "?")] += m.values
        elif m.name in ("AlertsSent", "SweepsCompleted", "DriftDetected", "NotificationsFailed"):
            totals[m.name] += sum(m.values)
        else:  # published while non-zero (and the oldest lock's age): the latest value seen
            last[m.name] = max(m.values)
    print("    totals:  " + "  ".join(f"{k}={v:g}" for k, v in sorted(totals.items())))
    print("    latest non-zero:  " + "  ".join(f"{k}={v:g}" for k, v in sorted(last.items())))
    for klass, values in sorted(holds.items()):
        values.sort()
        print(f"    lock hold time {klass}: n={len(values)} p50={values[len(values) // 2]:.1f}s max={values[-1]:.1f}s")


def main() -> int:
    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="tfjanitor-demo-"))
    with MotoServer(log_path=str(work / "moto.log")) as server:
        os.environ.update(server.env())
        say(f"embedded AWS emulator (moto server) on {server.url}")
        create_backend(server.url)
        story = TerraformStory(server.url, work) if shutil.which("terraform") else SyntheticStory(server.url)
        if isinstance(story, SyntheticStory):
            say("terraform is not on PATH: playing the story with the exact items Terraform writes")

        say(f"starting the stack from template.yaml (sweeps every {300 / TIME_SCALE:g}s, stale after {STALE_AFTER})")
        stack = LocalStack(
            ROOT / "template.yaml",
            server.url,
            REGION,
            {
                "StaleAfter": STALE_AFTER,
                "ReadOnlyStaleAfter": STALE_AFTER,
                "StateBucketNames": BUCKET,
                "AlertEmail": "on-call@example.com",
                "AccountAlias": "demo-sandbox",
            },
            time_scale=TIME_SCALE,
            emails_dir=OUT / "emails",
            echo=print,
            as_deployed=True,  # sam build's artefacts, deployed into the emulator, each function in a Lambda box
        )
        stack.setup()
        try:
            say("healthy terraform applies: network, app (and its staging workspace), ci, billing")
            story.healthy()
            stack.run(4)
            say("a CI job is killed (SIGKILL) in the middle of terraform apply")
            story.kill_apply()
            wait_for_emails(stack, 1)
            say("someone edits the billing state by hand and uploads it")
            story.edit_state()
            wait_for_emails(stack, 2)
            say("the on-call engineer follows the emails: force-unlock, then repair the digest")
            story.force_unlock()
            wait_for_emails(stack, 3)
            repair_digest(server.url, stack)
            wait_for_emails(stack, 4)
            say("a few more sweeps: nothing new to say, so no email")
            stack.run(6)
        finally:
            story.close()
            stack.close()
        metrics_summary(stack)
        png = render_dashboard(stack.metrics, stack.dashboard_body(), OUT / "dashboard.png", f"tfjanitor demo ({REGION})")
        if shutil.which("terraform"):
            say("tfjanitor scan, as you would run it from a laptop, after the fixes")
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(server.env())
            subprocess.run(
                [sys.executable, "-m", "tfjanitor", "scan", "--region", REGION, "--table", TABLE], env=env, timeout=120, check=False
            )
    shutil.rmtree(work, ignore_errors=True)
    emails = sorted((OUT / "emails").glob("*.eml"))
    say(f"done in {time.monotonic() - started:.0f}s: {len(emails)} emails; the emulator is stopped")
    for path in emails:
        print(f"    {path.relative_to(ROOT)}")
    print(f"    {png.relative_to(ROOT)}")
    return 0 if len(emails) == 4 else 1


if __name__ == "__main__":
    sys.exit(main())
