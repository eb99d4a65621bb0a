"""The emails' "What to do" for a stale lock whose Who looks like a CI runner's mentions the cleanup step."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.builders import lock_info
from tfjanitor.checks.findings import stale_lock, stale_lockfile
from tfjanitor.checks.runners import CI_CLEANUP, looks_like_ci_runner
from tfjanitor.terraform import LockInfo, parse_lock_info

NOW = datetime(2026, 11, 25, 3, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "who",
    [
        "runner@fv-az123-456",
        "runner@my-self-hosted",
        "fv-az12-3\\runneradmin@fv-az12-3",
        "gitlab-runner@build-01",
        "root@runner-abcd1234-project-42-concurrent-0",
        "root@runner-t3st-project-7-concurrent-1-abcde",
        "jenkins@agent-7",
        "vsts@fv-az77-88",
        "AzDevOps@vmss000001",
        "atlantis@atlantis-0",
        "root@4f9c2a1b3d7e",
        "root@atlantis-7d9f8b6c5d-x2k4p",
        "buildkite-agent@ci-9",
    ],
)
def test_ci_runner_whos_are_recognised(who: str) -> None:
    assert looks_like_ci_runner(who)


@pytest.mark.parametrize("who", ["alice@laptop", "root@vm", "ci@runner-7", "", "runner", "@", "bob@4f9c2a1b3d7e.example"])
def test_other_whos_are_not(who: str) -> None:
    assert not looks_like_ci_runner(who)


def test_a_ci_runners_stale_lock_fix_mentions_the_cleanup_step_and_a_persons_does_not() -> None:
    def lock(who: str) -> LockInfo:
        return parse_lock_info(lock_info("tfstate-demo/k", who=who, now=NOW - timedelta(hours=3)))

    runner = stale_lock("ap-northeast-2", "t", "tfstate-demo", "k", lock("runner@fv-az1-2"), NOW, timedelta(hours=1))
    person = stale_lock("ap-northeast-2", "t", "tfstate-demo", "k", lock("alice@laptop"), NOW, timedelta(hours=1))
    lockfile = stale_lockfile("ap-northeast-2", "tfstate-demo", "k", "e", lock("gitlab-runner@x"), NOW, timedelta(hours=1))
    assert runner.fix[-1] == CI_CLEANUP and lockfile.fix[-1] == CI_CLEANUP
    assert "tfjanitor unlock --mine" in CI_CLEANUP and "docs/ci-cleanup.md" in CI_CLEANUP
    assert CI_CLEANUP not in person.fix and len(person.fix) == len(runner.fix) - 1
