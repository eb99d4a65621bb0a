"""``tfjanitor local`` as deployed (issue 19.4): sam build's artefacts, the template created as a stack in the
emulator, each function in a Lambda box with the deployed stack's configuration."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from tests.conftest import BUCKET, REGION, client
from tests.support.boxes import ROOT, runtime_dir
from tests.support.builders import lock_info, put_lock, put_state, state_body
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.runner import LocalStack


def test_the_local_stack_runs_what_sam_deploy_ships(backend: MotoServer, tmp_path: Path) -> None:
    runtime_dir()  # skips outside CI when there is no Python 3.13 or no runtime client
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    put_state(s3, ddb, BUCKET, "app/terraform.tfstate", state_body())  # the table names the bucket
    # The first run of a new state, killed before it wrote anything: no sign of life since its lock.
    put_lock(ddb, BUCKET, "ci/terraform.tfstate", lock_info(f"{BUCKET}/ci/terraform.tfstate", age=timedelta(hours=3)))
    said: list[str] = []
    stack = LocalStack(
        ROOT / "template.yaml",
        backend.url,
        REGION,
        {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com"},
        time_scale=300,
        echo=said.append,
        as_deployed=True,
        build_dir=tmp_path / "build",
        full_cpu=True,
    )
    try:
        stack.setup()
        deadline = time.monotonic() + 180
        while not stack.emails and time.monotonic() < deadline:
            stack.step()
            time.sleep(0.2)
    finally:
        stack.close()
    [email] = stack.emails
    assert email.subject.startswith("[tfjanitor] WARNING Stale lock: tfstate-demo/ci/terraform.tfstate")
    # The deployed stack's resources: its findings table (named by CloudFormation, not the runner), its topic.
    names = client("dynamodb", backend).list_tables()["TableNames"]
    [findings] = [n for n in names if n.startswith("tfjanitor-FindingsTable")]
    assert client("dynamodb", backend).scan(TableName=findings)["Count"] >= 1
    assert any("[lambda-box] SweeperFunction: 128 MB" in line for line in said)  # run in a box, at its MemorySize
    sweeps = [response for name, response in stack.invocations if name == "SweeperFunction"]
    assert sweeps and sweeps[0]["findings"] == 1 and not sweeps[0]["skipped"]
    assert any(m.name == "StaleLocks" for m in stack.metrics)  # the box's EMF lines, read back
    assert json.loads(email.chat)["source"] == "custom"


def test_the_dashboard_picture_is_the_templates_dashboard(tmp_path: Path) -> None:
    """Drawn from the template's own dashboard body: every TfJanitor metric of every widget, none defined twice."""
    from tests.support.cfn import Rendered, load_template
    from tfjanitor.local.dashboard import panels, render_dashboard
    from tfjanitor.local.runner import Metric

    template = load_template()
    body = Rendered(template, {"StateBucketNames": BUCKET, "AlertEmail": "oncall@example.com"}).value(
        template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    )
    shown = panels(body)
    widgets = json.loads(body)["widgets"]
    assert len(shown) == sum(1 for w in widgets if w["type"] == "metric")
    names = {line.name for panel in shown for line in panel.lines}
    assert {"SweepsCompleted", "StaleLocks", "DigestDrift", "LockHoldSeconds", "NotificationsFailed"} <= names
    metrics = [Metric(time.time() + i, "StaleLocks", {"service": "tfjanitor"}, [1.0]) for i in range(3)]
    assert render_dashboard(metrics, body, tmp_path / "d.png").stat().st_size > 10_000
