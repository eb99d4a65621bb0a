"""The functions as deployed: what ``sam build`` produces, run by the real runtime interface client in a Lambda
box (tfjanitor.local.lambda_box) with the template's MemorySize and its CPU share, against moto server.

One ``sam build`` per session, into a temporary directory. The sweeper runs 1,000 states here (bigger tables:
``make bench``); no assertion on time. Memory is "flat" when the RSS after each warm invocation stays within
FLAT_MB of the RSS after the third (the first ones still fill caches: botocore's parsers, the findings table's
pages); before the session was kept per execution environment it grew about 14 MB per invocation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, TABLE, client
from tests.integration.conftest import captured
from tests.support.boxes import ROOT, TEST_FUNCTIONS, built, runtime_dir
from tests.support.builders import lock_info, md5, put_lock, seed_states, state_body
from tfjanitor.local.emulator import MotoServer
from tfjanitor.local.lambda_box import BoxFunction, Invocation, LambdaBox, built_function
from tfjanitor.local.runner import lambda_record
from tfjanitor.local.runtimes import find_python

FLAT_MB = 2.0
EVENT = json.loads((ROOT / "events" / "schedule.json").read_text())
PARAMETERS = {"StateBucketNames": BUCKET, "LockTableNames": TABLE, "AlertEmail": "oncall@example.com"}


@pytest.fixture(scope="module")
def runtime() -> Path:
    return runtime_dir()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built(tmp_path_factory.mktemp("sam") / "build")


def layer_of(build: Path) -> Path:
    return build / "TfJanitorLayer" / "python"


def emulator_env(server: MotoServer, alerting: dict[str, Any]) -> dict[str, str]:
    """What differs from AWS: the endpoint and credentials, and the stack's own table and topic in the emulator."""
    return {**server.env(), "FINDINGS_TABLE": alerting["findings_table"], "ALERT_TOPIC_ARN": alerting["alert_topic_arns"][0]}


def flat(invocations: list[Invocation]) -> tuple[float, list[float]]:
    """(growth after the third warm invocation, every warm invocation's RSS)."""
    rss = [i.rss_mb or 0.0 for i in invocations if not i.cold]
    return max(rss[2:]) - rss[2], rss


def logged(invocation: Invocation, message: str) -> list[dict[str, Any]]:
    out = []
    for line in invocation.logs:
        if line.startswith("{") and f'"{message}"' in line:
            doc = json.loads(line)
            if doc.get("message") == message:
                out.append(doc)
    return out


def emf(invocation: Invocation) -> list[dict[str, Any]]:
    return [json.loads(line) for line in invocation.logs if line.startswith("{") and '"_aws"' in line]


# --------------------------------------------------------------------------- what the build ships


def test_the_built_layer_ships_unchecked_hash_bytecode_for_every_module(build: Path) -> None:
    """/opt is read-only on Lambda: without a .pyc next to every module, each cold start compiles the layer again."""
    python = find_python("3.13")
    import subprocess

    magic = bytes.fromhex(
        subprocess.run(
            [str(python), "-c", "import importlib.util as u; print(u.MAGIC_NUMBER.hex())"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    sources = sorted(layer_of(build).rglob("*.py"))
    assert len(sources) > 300 and (layer_of(build) / "tfjanitor" / "scan" / "sweeper.py") in sources
    missing, checked = [], []
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not cached.exists():
            missing.append(str(source))
            continue
        header = cached.read_bytes()[:8]
        if header[:4] != magic or int.from_bytes(header[4:8], "little") != 0b01:  # hash-based, source never checked
            checked.append(str(cached))
    assert missing == [] and checked == []
    assert not list(layer_of(build).rglob("*.cpython-311.pyc"))  # nothing of the developer's interpreter
    assert not (build / "TfJanitorLayer" / "python" / "Makefile").exists()


def probe(build: Path, layer: Path, runtime: Path, event: dict[str, Any]) -> Invocation:
    """The probe handler in the sweeper's environment, with ``layer`` as its layer."""
    sweeper = built_function(build, "SweeperFunction", PARAMETERS)
    fn = BoxFunction("Probe", TEST_FUNCTIONS / "box", "app.probe", [layer], sweeper.runtime, 256, 30, sweeper.environment)
    with LambdaBox(fn, cpu_share=1.0, runtime_dir=runtime) as box:
        return box.invoke(event)


def test_only_the_built_artefacts_and_the_runtime_are_on_the_path(build: Path, runtime: Path) -> None:
    modules = ["tfjanitor.scan.sweeper", "boto3", "botocore", "aws_lambda_powertools", "tfjanitor"]
    answer = probe(build, build / "TfJanitorLayer", runtime, {"import": modules})
    assert answer.ok, answer.error
    doc = answer.response
    layer = str(layer_of(build))
    assert all(doc["imported"][name].startswith(layer + "/") for name in modules[1:]), doc["imported"]
    stdlib = str(find_python("3.13").resolve().parents[1])  # the interpreter's prefix (pyenv): the standard library
    allowed = (layer + "/", str(TEST_FUNCTIONS / "box") + "/", str(runtime) + "/", stdlib + "/")
    strays = [f for f in doc["module_files"] if not f.startswith(allowed)]
    assert strays == [], f"imported from outside the build, the runtime and the standard library: {strays}"
    source_tree = [e for e in doc["sys_path"] if e.startswith(str(ROOT)) and not e.startswith((str(TEST_FUNCTIONS), str(runtime)))]
    assert source_tree == [], doc["sys_path"]  # neither layers/tfjanitor nor the dev venv


def test_the_layers_bytecode_is_what_runs_whatever_its_sources_say(build: Path, runtime: Path, tmp_path: Path) -> None:
    """unchecked-hash .pyc files are used without looking at the source: break the source, the layer still imports.
    The same layer without its .pyc files fails: the check can fail."""
    shipped = tmp_path / "shipped"
    shutil.copytree(build / "TfJanitorLayer", shipped)
    (shipped / "python" / "tfjanitor" / "durations.py").write_text('raise RuntimeError("the source was compiled")\n')
    stripped = tmp_path / "stripped"
    shutil.copytree(shipped, stripped)
    for cache in (stripped / "python").rglob("__pycache__"):
        shutil.rmtree(cache)
    assert probe(build, shipped, runtime, {"import": ["tfjanitor.durations"]}).ok
    broken = probe(build, stripped, runtime, {"import": ["tfjanitor.durations"]})
    assert broken.status == "error" and broken.error is not None
    assert "the source was compiled" in broken.error["errorMessage"]


# --------------------------------------------------------------------------- the functions, warm


def test_the_sweeper_cold_then_ten_warm_in_one_environment_with_flat_memory(
    build: Path, runtime: Path, backend: MotoServer, alerting: dict[str, Any]
) -> None:
    s3, ddb = client("s3", backend), client("dynamodb", backend)
    seeded = seed_states(s3, ddb, BUCKET, 1000, drift_every=100, stale=5)
    fn = built_function(build, "SweeperFunction", PARAMETERS)
    assert fn.memory_mb == 128 and fn.timeout == 240  # the template's (its CPU share: 128 / 1769)
    with LambdaBox(fn, emulator_env(backend, alerting), runtime_dir=runtime) as box:
        runs = [box.invoke(EVENT) for _ in range(11)]
        limits = box.limits
    assert [r.status for r in runs] == ["success"] * 11, [(r.status, r.error) for r in runs if not r.ok]
    assert box.environments == 1 and runs[0].cold and not any(r.cold for r in runs[1:])
    found = seeded["drifted"] + seeded["stale"]
    assert runs[0].response == {
        "complete": True,
        "findings": found,
        "errors": 0,
        "alerts_sent": found,
        "notifications_failed": 0,
        "exit_code": 1,
        "skipped": False,
    }
    assert all(r.response == {**runs[0].response, "alerts_sent": 0} for r in runs[1:])  # each alert sent once
    assert len(captured(backend)) == found
    # Per-run counters: each warm run counts its own calls (the kept session's counters are reset per run).
    stats = [logged(r, "sweep finished")[0]["stats"] for r in runs]
    assert len({json.dumps(s["api_calls"], sort_keys=True) for s in stats[2:]}) == 1
    assert {s["retries"] for s in stats} == {0}
    assert all(0 < s["critical_path_calls"] <= s["total_api_calls"] for s in stats)  # counted from this run's start
    growth, rss = flat(runs)
    assert growth < FLAT_MB, f"RSS after each warm invocation (MB): {rss}"
    if limits.enforced:
        assert all((r.cgroup_peak_mb or 0) < fn.memory_mb for r in runs)


class TerraformRuns:
    """Terraform runs on one state (lock, write, digest, release); each run's stream records are one batch, in
    Lambda's shape."""

    KEY = "app/terraform.tfstate"

    def __init__(self, server: MotoServer):
        self.ddb, self.s3, self.streams = client("dynamodb", server), client("s3", server), client("dynamodbstreams", server)
        self.arn = self.ddb.update_table(
            TableName=TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )["TableDescription"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._iterator = self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]
        self._serial = 0

    def run(self) -> list[dict[str, Any]]:
        self._serial += 1
        put_lock(self.ddb, BUCKET, self.KEY, lock_info(f"{BUCKET}/{self.KEY}"))
        body = state_body(self._serial)
        self.s3.put_object(Bucket=BUCKET, Key=self.KEY, Body=body)
        self.ddb.put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{self.KEY}-md5"}, "Digest": {"S": md5(body)}})
        self.ddb.delete_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{self.KEY}"}})
        page = self.streams.get_records(ShardIterator=self._iterator)
        self._iterator = page["NextShardIterator"]
        return [lambda_record(r, self.arn) for r in page["Records"]]


def test_the_stream_monitor_takes_stream_batches_warm_with_flat_memory(
    build: Path, runtime: Path, backend: MotoServer, alerting: dict[str, Any]
) -> None:
    terraform = TerraformRuns(backend)
    fn = built_function(build, "StreamMonitorFunction", {**PARAMETERS, "LockTableStreamArn": terraform.arn})
    runs, sizes = [], []
    with LambdaBox(fn, emulator_env(backend, alerting), runtime_dir=runtime) as box:
        for _ in range(12):
            batch = terraform.run()
            sizes.append(len(batch))
            runs.append(box.invoke({"Records": batch}))
    assert sizes == [3] * 12  # lock INSERT, digest INSERT/MODIFY, lock REMOVE
    assert [r.response for r in runs] == [{"batchItemFailures": []}] * 12, [r.error for r in runs if not r.ok]
    assert box.environments == 1
    # Each batch's release is a hold time (LockHoldSeconds, dimension OperationClass=apply).
    holds = [[blob["LockHoldSeconds"] for blob in emf(r) if "LockHoldSeconds" in blob] for r in runs]
    assert all(len(h) == 1 for h in holds), holds
    growth, rss = flat(runs)
    assert growth < FLAT_MB, f"RSS after each warm invocation (MB): {rss}"


def test_the_auditor_runs_cold_then_warm(build: Path, runtime: Path, backend: MotoServer, alerting: dict[str, Any]) -> None:
    fn = built_function(build, "AuditorFunction", PARAMETERS)
    with LambdaBox(fn, emulator_env(backend, alerting), runtime_dir=runtime) as box:
        runs = [box.invoke(EVENT) for _ in range(4)]
    assert [r.status for r in runs] == ["success"] * 4, [r.error for r in runs]
    assert all(r.response["complete"] and r.response["errors"] == 0 for r in runs), [r.response for r in runs]
    assert box.environments == 1 and [r.cold for r in runs] == [True, False, False, False]
