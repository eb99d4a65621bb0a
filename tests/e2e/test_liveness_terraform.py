"""Dead or slow (issue 11), end to end: real Terraform, the local stack (stream on, compressed time), emails.

- A state with five quick applies on record learns a short threshold: a killed apply is reported long
  before StaleAfter, once MinStaleAfter has passed.
- A live apply that persists its state as it goes is never reported, though it holds the lock longer
  than StaleAfter.
- An apply killed between its state write and its digest write is an interrupted write; its commands,
  pasted in order, make `terraform plan` work again.
- `tfjanitor locks` tells the killed apply (stale) from a live one (alive).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import BUCKET, REGION, TABLE, client
from tests.e2e.test_stack_local import subjects, wait_for
from tests.support.awscli import Shell
from tests.support.proxy import DigestStallProxy
from tfjanitor.cli.main import main
from tfjanitor.local.runner import FINDINGS_TABLE, LocalStack
from tfjanitor.terraform import parse_time

ROOT = Path(__file__).resolve().parents[2]


def local_stack(server, tmp_path: Path, **params: str) -> LocalStack:
    base = {"StateBucketNames": BUCKET, "ExtraBucketNames": BUCKET, "SweepIntervalMinutes": "5", "AlertEmail": "oncall@example.com"}
    return LocalStack(
        ROOT / "template.yaml", server.url, REGION, base | params, time_scale=300, emails_dir=tmp_path / "emails", echo=lambda _: None
    )


def open_findings(server) -> dict[str, dict]:
    items = client("dynamodb", server).scan(TableName=FINDINGS_TABLE)["Items"]
    docs = [json.loads(i["Finding"]["S"]) for i in items if i.get("Status", {}).get("S") == "open"]
    return {d["kind"]: d for d in docs}


def test_a_killed_apply_on_a_state_with_quick_applies_is_reported_long_before_stale_after(terraform, backend, tmp_path) -> None:
    stack = local_stack(backend, tmp_path, StaleAfter="1h", MinStaleAfter="8s", MinHistory="5")
    tf = terraform()
    tf.init()
    stack.setup()
    for i in range(5):
        tf.apply(f"quick-{i}")
    wait_for(stack, lambda: sum(len(m.values) for m in stack.metrics if m.name == "LockHoldSeconds") >= 5)
    killed = tf.start_apply_and_kill("dies", sleep=300)
    wait_for(stack, lambda: any("Stale lock" in s for s in subjects(stack)), timeout=90)
    [email] = stack.emails
    assert "p95 of 5 runs" in email.body and "no sign of life for" in email.body
    stale = open_findings(backend)["stale_lock"]
    assert stale["lock_id"] == killed.lock["ID"]
    threshold = stale["details"]["threshold"]
    assert threshold["learned"] and threshold["fixed_seconds"] == 3600 and stale["details"]["threshold_seconds"] < 60
    assert stale["details"]["quiet_seconds"] >= stale["details"]["threshold_seconds"] >= 8  # MinStaleAfter passed
    assert stale["details"]["age_seconds"] < 3600  # long before StaleAfter


def test_a_live_apply_persisting_its_state_is_never_stale(terraform, backend, tmp_path) -> None:
    """Resources of 1 s, 21 s and 21 s in a chain: Terraform persists the state when the second completes
    (20 s after the first did), then at the end. The lock is held longer than StaleAfter, never silent that long."""
    stack = local_stack(backend, tmp_path, StaleAfter="35s", ReadOnlyStaleAfter="35s")
    tf = terraform(chain=(21, 21))
    tf.init()
    stack.setup()
    apply = tf.start(["apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=slow", "-var", "sleep=1"], "slow-apply")
    tf.wait_for_lock(apply)
    while apply.poll() is None:
        stack.step()
        time.sleep(0.25)
    assert tf.finish(apply) == 0, (tf.workdir / "slow-apply.log").read_text()
    wait_for(stack, lambda: any(m.name == "LockHoldSeconds" for m in stack.metrics))
    stack.run(2.0)  # a few more sweeps after the release
    [hold] = [v for m in stack.metrics if m.name == "LockHoldSeconds" for v in m.values]
    assert hold > 35  # held longer than StaleAfter...
    assert not [s for s in subjects(stack) if "Stale lock" in s]  # ...and never reported: it showed signs of life
    sweeps = [r for name, r in stack.invocations if name == "SweeperFunction"]
    assert len(sweeps) > 20 and all(r["complete"] for r in sweeps)


def test_an_apply_killed_between_its_state_and_digest_writes_is_an_interrupted_write(
    terraform, backend, tmp_path, shell: Shell
) -> None:
    with DigestStallProxy(backend.url) as proxy:
        tf = terraform(endpoint_url=proxy.url)  # Terraform talks to the emulator through the proxy
        tf.init()
        tf.apply("v1")
        stack = local_stack(backend, tmp_path, StaleAfter="5s")
        stack.setup()
        proxy.arm()
        tf.start(["apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=v2"], "interrupted")
        try:
            assert proxy.stalled.wait(timeout=90), (tf.workdir / "interrupted.log").read_text()
        finally:
            tf.close()  # SIGKILL the process group: the state object is written, its digest never will be
        wait_for(stack, lambda: any("Interrupted write" in s for s in subjects(stack)), timeout=90)
        assert not [s for s in subjects(stack) if "Stale lock" in s]  # one finding, not two
        finding = open_findings(backend)["interrupted_write"]
        assert "The state holds what the dead run had applied so far" in finding["message"]
        commands = finding["details"]["commands"]
        assert len(commands) == 3 and commands[-1] == "terraform plan"

        # Pasted in order, as printed, from the configuration's working directory (the real AWS CLI).
        release, digest, plan = commands
        unlocked = shell.paste(release, tf.workdir, answer="yes")
        assert unlocked.ok and "released" in unlocked.output, unlocked.output
        stored = shell.paste(digest, tf.workdir)
        assert stored.ok, stored.output
        planned = shell.paste(plan, tf.workdir)
        assert planned.ok and ("No changes" in planned.output or "Plan:" in planned.output), planned.output


def test_locks_tells_a_killed_apply_from_a_live_one(terraform, backend, capsys) -> None:
    dead, live = terraform("dead", key="dead/terraform.tfstate"), terraform("live", key="live/terraform.tfstate")
    dead.init()
    live.init()
    killed = dead.start_apply_and_kill("dies", sleep=300)
    taken = parse_time(killed.lock["Created"])
    while (datetime.now(timezone.utc) - taken).total_seconds() < 11:  # past the 10 s threshold below
        time.sleep(0.2)
    running = live.start(["apply", "-auto-approve", "-input=false", "-no-color", "-var", "v=x", "-var", "sleep=60"], "live-apply")
    _, held = live.wait_for_lock(running)
    args = [
        "locks",
        "--region",
        REGION,
        "--table",
        TABLE,
        "--endpoint-url",
        backend.url,
        "--stale-after",
        "10s",
        "--stale-multiplier",
        "1.5",
    ]  # alive: silent for at most 10 s / 1.5
    assert main([*args, "--format", "json"]) == 0  # stale alone is not exit 1: locks lists, scan judges
    doc = json.loads(capsys.readouterr().out)
    verdicts = {row["key"]: (row["verdict"], row["lock_id"]) for row in doc["locks"]}
    assert verdicts == {"dead/terraform.tfstate": ("stale", killed.lock["ID"]), "live/terraform.tfstate": ("alive", held["ID"])}
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "2 locks held (1 stale, 1 alive)" in table
    [dead_row] = [line for line in table.splitlines() if "dead/terraform.tfstate" in line]
    [live_row] = [line for line in table.splitlines() if "live/terraform.tfstate" in line]
    assert "STALE" in dead_row and killed.lock["ID"] in dead_row and "alive" in live_row
    live.close()
