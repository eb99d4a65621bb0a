"""`make demo`: let real Terraform break a backend on the embedded emulator, then sweep it.

Story (with `terraform` on PATH): a healthy apply, a workspace, a CI job killed mid-apply
(stale DynamoDB lock), another killed with use_lockfile (stale .tflock), a state edited by
hand (digest drift), and a state kept in a bucket in another region. Then `tfjanitor scan`
runs exactly as a user would run it, and the sweeper Lambda handler runs once in-process
with the template's environment to show the metrics it publishes.

Everything runs on 127.0.0.1 and is stopped before the script ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from tests.support.builders import lock_info, md5, put_lock, put_state, state_body  # noqa: E402
from tfjanitor.emulator import MotoServer  # noqa: E402

REGION, TABLE, BUCKET, FAR_BUCKET = "ap-northeast-2", "terraform-state-lock", "tfstate-demo", "tfstate-legacy-us"
THRESHOLD = "5s"  # the demo compresses time: a lock older than 5 s counts as stale


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def clients(url: str, region: str = REGION):  # type: ignore[no-untyped-def]
    kw = {"endpoint_url": url, "region_name": region, "aws_access_key_id": "test", "aws_secret_access_key": "test"}
    return boto3.client("s3", **kw), boto3.client("dynamodb", **kw)


def create_backend(url: str) -> None:
    s3, ddb = clients(url)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    clients(url, "us-east-1")[0].create_bucket(Bucket=FAR_BUCKET)
    print(f"    lock table {TABLE} and bucket {BUCKET} in {REGION}; bucket {FAR_BUCKET} in us-east-1")


def story_with_terraform(url: str, work: Path) -> None:
    from tests.support.terraform import BackendConfig, TerraformProject  # noqa: PLC0415

    def project(name: str, **backend: object) -> TerraformProject:
        p = TerraformProject(work / name, BackendConfig(endpoint_url=url, **backend))  # type: ignore[arg-type]
        p.init()
        return p

    say("terraform apply: network (healthy) and app with a staging workspace (healthy)")
    network = project("network", key="network/terraform.tfstate")
    network.apply("v1")
    app = project("app", key="app/terraform.tfstate")
    app.apply("v1")
    app.workspace_new("staging")
    app.apply("v1")

    say("a CI job is killed (SIGKILL) in the middle of terraform apply: its lock stays behind")
    ci = project("ci-job", key="ci/terraform.tfstate")
    ci.apply("v1")
    killed = ci.start_apply_and_kill("v2")
    print(f"    lock {killed.lock['ID']} held by {killed.lock['Who']} since {killed.lock['Created']}")

    say("the same with use_lockfile = true: a .tflock object stays behind")
    lf = project("lockfile-only", key="edge/terraform.tfstate", dynamodb_table=None, use_lockfile=True)
    lf.apply("v1")
    killed_lf = lf.start_apply_and_kill("v2")
    print(f"    s3://{BUCKET}/edge/terraform.tfstate.tflock, lock {killed_lf.lock['ID']}")

    say("someone edits the billing state by hand and uploads it (no lock, no digest update)")
    billing = project("billing", key="billing/terraform.tfstate")
    billing.apply("v1")
    s3, _ = clients(url)
    body = s3.get_object(Bucket=BUCKET, Key="billing/terraform.tfstate")["Body"].read()
    doc = json.loads(body)
    doc["serial"] += 1
    s3.put_object(Bucket=BUCKET, Key="billing/terraform.tfstate", Body=json.dumps(doc, indent=2).encode())
    plan = billing.plan(check=False, timeout=60)
    print("    terraform plan now fails:", next(
        (line.strip() for line in plan.output.splitlines() if "does not have the expected content" in line),
        f"(exit {plan.returncode})",
    ))
    for p in (network, app, ci, lf, billing):
        p.close()

    say(f"a legacy state in {FAR_BUCKET} (us-east-1) whose digest lives in the {REGION} table")
    # In AWS this comes from an endpoints.dynamodb override; the emulator takes the region from
    # the request signature, so the object and digest are written here the way Terraform writes them.
    _, ddb = clients(url)
    put_state(clients(url, "us-east-1")[0], ddb, FAR_BUCKET, "legacy/terraform.tfstate", state_body(1))


def story_without_terraform(url: str) -> None:
    say("terraform is not on PATH: seeding the same story with the exact items Terraform writes")
    s3, ddb = clients(url)
    for key in ("network/terraform.tfstate", "app/terraform.tfstate", "env:/staging/app/terraform.tfstate"):
        put_state(s3, ddb, BUCKET, key, state_body())
    put_state(s3, ddb, BUCKET, "ci/terraform.tfstate", state_body())
    put_lock(ddb, BUCKET, "ci/terraform.tfstate", lock_info(f"{BUCKET}/ci/terraform.tfstate"))
    s3.put_object(Bucket=BUCKET, Key="edge/terraform.tfstate", Body=state_body())
    s3.put_object(
        Bucket=BUCKET, Key="edge/terraform.tfstate.tflock", Body=lock_info(f"{BUCKET}/edge/terraform.tfstate").encode()
    )
    put_state(s3, ddb, BUCKET, "billing/terraform.tfstate", state_body(1))
    s3.put_object(Bucket=BUCKET, Key="billing/terraform.tfstate", Body=state_body(2))
    put_state(clients(url, "us-east-1")[0], ddb, FAR_BUCKET, "legacy/terraform.tfstate", state_body())
    assert md5(state_body(1)) != md5(state_body(2))


def scan(url: str) -> int:
    cmd = [
        sys.executable, "-m", "tfjanitor.cli", "scan", "--region", REGION, "--table", TABLE,
        "--bucket", BUCKET, "--stale-after", THRESHOLD, "--read-only-stale-after", THRESHOLD,
    ]
    say("tfjanitor " + " ".join(cmd[3:]) + f"   (endpoint {url})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
    return subprocess.run(cmd, env=env, timeout=120, check=False).returncode


def run_sweeper(url: str) -> None:
    """The scheduled Lambda's handler, once, with the template's environment."""
    say("the sweeper Lambda handler, run in-process as the schedule would (metrics it publishes):")
    os.environ.update({
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "LOCK_TABLES": TABLE, "EXTRA_BUCKETS": BUCKET,
        "STALE_AFTER": THRESHOLD, "READ_ONLY_STALE_AFTER": THRESHOLD, "POWERTOOLS_SERVICE_NAME": "tfjanitor",
        "POWERTOOLS_METRICS_NAMESPACE": "TfJanitor", "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "CRITICAL",
    })
    import contextlib  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415
    import io  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("sweeper_app", ROOT / "functions" / "sweeper" / "app.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "tfjanitor-sweeper", 256, "demo"
        invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:tfjanitor-sweeper"

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        response = module.lambda_handler({"source": "aws.scheduler", "detail": {}}, Context())
    for line in out.getvalue().splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        names = [m["Name"] for m in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
        dims = ", ".join(f"{d}={blob[d]}" for d in blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
        values = "  ".join(f"{n}={blob[n][0]:g}" for n in names)
        print(f"    [{dims}] {values}")
    print(f"    handler returned {response}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="tfjanitor-demo-"))
    started = time.monotonic()
    with MotoServer(log_path=str(work / "moto.log")) as server:
        say(f"embedded AWS emulator (moto server) on {server.url}")
        create_backend(server.url)
        if shutil.which("terraform"):
            story_with_terraform(server.url, work)
        else:
            story_without_terraform(server.url)
        time.sleep(6)  # let the killed runs' locks pass the 5 s demo threshold
        code = scan(server.url)
        run_sweeper(server.url)
    shutil.rmtree(work, ignore_errors=True)
    say(
        f"done in {time.monotonic() - started:.0f}s; tfjanitor scan exited {code} "
        "(0 = healthy, 1 = findings to act on, 2 = sweep incomplete). The emulator is stopped."
    )
    return 0 if code == 1 else 1  # the story plants problems: finding them is success


if __name__ == "__main__":
    sys.exit(main())
