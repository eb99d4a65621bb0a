"""Whether a lock's ``Who`` (``<os user>@<hostname>``) looks like a CI runner's (pure).

A CI job cancelled or timed out mid-apply is the most common source of stale locks; such a lock's fix mentions
the cleanup step that releases it at the source (``tfjanitor unlock --mine``, docs/ci-cleanup.md). A guess on
the names CI systems use, never a decision: it only adds a sentence to the fix.
"""

from __future__ import annotations

import re

# The OS users CI systems run jobs as: GitHub's hosted runners (runner; runneradmin on Windows) and the runner
# service, GitLab Runner's shell executor, Jenkins agents, Azure Pipelines' hosted (vsts) and scale-set
# (AzDevOps) agents, Atlantis, Buildkite, CircleCI, TeamCity, Bamboo.
CI_USERS = frozenset(
    {
        "runner",
        "runneradmin",
        "actions-runner",
        "github-runner",
        "gitlab-runner",
        "jenkins",
        "vsts",
        "azdevops",
        "atlantis",
        "buildkite-agent",
        "circleci",
        "teamcity",
        "bamboo",
    }
)
_CI_HOSTS = re.compile(
    r"fv-az\d+-\d+"  # GitHub-hosted and Microsoft-hosted (Azure Pipelines) runner VMs
    r"|runner-[0-9a-z_-]+-project-\d+-concurrent-\d+.*"  # GitLab Runner's docker and kubernetes executors
    r"|[0-9a-f]{12}"  # a container's default hostname: a job container (GitHub container jobs, docker agents)
    r"|[a-z0-9]([a-z0-9-]*[a-z0-9])?-[bcdfghjklmnpqrstvwxz2456789]{8,10}-[bcdfghjklmnpqrstvwxz2456789]{5}"  # a pod
    r"|buildkitsandbox",
    re.IGNORECASE,
)

CI_CLEANUP = (
    "Who looks like a CI runner: a job cancelled or timed out mid-run leaves its lock behind like this. A cleanup "
    "step that always runs after the terraform steps (tfjanitor unlock --mine: GitHub's if: always(), GitLab's "
    "after_script, Jenkins' post { always }, Azure's condition: always(); see docs/ci-cleanup.md) releases such a "
    "lock on the machine that ran the job, as soon as the job ends."
)


def looks_like_ci_runner(who: str) -> bool:
    """Whether ``who`` names a CI system's user or a runner-like host (a hosted runner VM, a container, a pod)."""
    user, at, host = who.rpartition("@")
    if not at:
        return False
    user = user.rpartition("\\")[2]  # DOMAIN\\user on Windows
    return user.lower() in CI_USERS or _CI_HOSTS.fullmatch(host) is not None
