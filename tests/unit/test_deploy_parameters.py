"""`sam deploy --guided` that cannot go wrong: what must be chosen has no default, every value is checked
when the change set is created (in plain words), the console groups and labels every parameter, and the
outputs say what to do next."""

from __future__ import annotations

import re
import shlex
import tomllib

import pytest

from tests.support.cfn import ROOT, Rendered, load_template
from tfjanitor.cli.main import build_parser
from tfjanitor.durations import parse_duration
from tfjanitor.local.template import check_parameters

# The least a deploy needs: the state buckets and where alerts go.
CHOSEN = {"StateBucketNames": "my-terraform-state", "AlertEmail": "oncall@example.com"}
DURATIONS = ["StaleAfter", "ReadOnlyStaleAfter", "ReleaseGracePeriod", "ReminderInterval"]


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def test_every_pattern_is_explained_in_plain_words_and_what_must_be_chosen_has_no_default(template) -> None:
    params = template["Parameters"]
    for name, spec in params.items():
        if "AllowedPattern" in spec:
            words = spec.get("ConstraintDescription", "")
            assert len(words) > 20, name
            assert not re.search(r"[\^$\\]|\[a-z|\{\d", words), (name, words)  # words, not the regex again
    assert "Default" not in params["StateBucketNames"]
    assert "every bucket of the account" in params["StateBucketNames"]["Description"]  # what "*" grants
    # Email or topic: neither alone is required, one of them is (Rules, below).
    assert params["AlertEmail"]["Default"] == params["AlertTopicArn"]["Default"] == ""


def test_pressing_enter_through_the_questions_fails_at_change_set_time_saying_what_to_choose(template) -> None:
    problems = check_parameters(template, {})
    assert problems == ["Parameters: [StateBucketNames] must have values"]
    [rule] = check_parameters(template, {"StateBucketNames": "my-terraform-state"})
    assert "AlertEmail" in rule and "AlertTopicArn" in rule
    assert check_parameters(template, CHOSEN) == []
    assert check_parameters(template, {"StateBucketNames": "*", "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:pd"}) == []


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("AlertEmail", "oncall@example"),
        ("AlertEmail", "on call@example.com"),
        ("AlertEmail", "a@b.com,c@d.com"),
        ("StateBucketNames", "My_Bucket"),
        ("StateBucketNames", "ab"),
        ("StateBucketNames", "state-"),
        ("StateBucketNames", "s3://my-terraform-state"),
        ("StateBucketNames", "my-terraform-state,Other"),
        ("StateBucketNames", "my-terraform-state, other-state"),
        ("StateBucketNames", ""),
        ("ExtraBucketNames", "a-bucket, b-bucket"),
        ("ExtraBucketNames", "a-bucket/"),
        ("ExtraBucketNames", "a-bucket/$(touch x)"),
        ("ExtraBucketNames", "a-bucket/ci dir"),
        ("LockTableNames", "lock table"),
        ("LockTableNames", "ab"),
        ("PeerRegions", "us east 1"),
        ("PeerRegions", "us-east-1, eu-west-1"),
        ("AlertTopicArn", "pagerduty"),
        ("AlertTopicArn", "arn:aws:sns:us-east-1:123456789012:alerts.fifo"),
        ("StateKmsKeyArns", "arn:aws:kms:us-east-1:123456789012:alias/terraform"),
        ("LockTableStreamArn", "arn:aws:dynamodb:us-east-1:123456789012:table/terraform-state-lock"),
        ("MetricsNamespace", "AWS/Lambda"),
        ("ReleaseOperationClasses", "plan, apply"),
        ("AccountAlias", "Payments Prod"),
        ("AccountAlias", "-prod"),
        ("AccountAlias", "payments--prod"),
        ("DocsUrl", "http://docs.example.com/"),
        ("DocsUrl", "https://docs.example.com/tfjanitor"),
        ("DocsUrl", ""),
        *[(d, bad) for d in DURATIONS for bad in ("90", "1 h", "1h30", "0s", "1w")],
    ],
)
def test_a_typo_is_refused_before_anything_is_created(template, name: str, bad: str) -> None:
    problems = check_parameters(template, CHOSEN | {name: bad})
    assert len(problems) == 1 and problems[0].startswith(f"Parameter '{name}' must satisfy constraint: ")
    assert template["Parameters"][name]["ConstraintDescription"] in problems[0]


@pytest.mark.parametrize(
    ("name", "good"),
    [
        ("StateBucketNames", "my-terraform-state,my.state.bucket,st8"),
        ("StateBucketNames", "*"),
        ("ExtraBucketNames", "lockfile-states,build-output/terraform/,build-output/env:/prod"),
        ("LockTableNames", "terraform-state-lock,Platform_Locks.v2"),
        ("PeerRegions", "us-east-1,us-gov-west-1"),
        ("AlertTopicArn", "arn:aws-cn:sns:cn-north-1:123456789012:ops-pager"),
        (
            "StateKmsKeyArns",
            "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab,"
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef",
        ),
        (
            "LockTableStreamArn",
            "arn:aws:dynamodb:ap-northeast-2:123456789012:table/terraform-state-lock/stream/2026-11-26T07:35:12.345",
        ),
        ("AccountAlias", "payments-prod"),
        ("AccountAlias", "acme-123"),
        ("DocsUrl", "https://docs.example.com/platform/tfjanitor/"),
        ("DocsUrl", "https://tfjanitor.github.io/tfjanitor/"),
        *[(d, good) for d in DURATIONS for good in ("90s", "1h30m", "2m30s", "1.5h", "1d")],
    ],
)
def test_what_users_write_is_accepted(template, name: str, good: str) -> None:
    assert check_parameters(template, CHOSEN | {name: good}) == []


def test_duration_patterns_accept_what_the_functions_parse(template) -> None:
    samples = ["90s", "15m", "1h30m", "2m30s", "1d12h", "1.5h", "0h5m", "0s", "1h30", "h", "1 h", "1w", "-5m"]
    for name in DURATIONS:
        pattern = template["Parameters"][name]["AllowedPattern"]
        for text in samples:
            try:
                parses = parse_duration(text) is not None
            except ValueError:
                parses = False
            assert bool(re.fullmatch(pattern, text)) == parses, (name, text)


def test_bad_email_and_bucket_are_rejected_by_the_patterns_themselves(template) -> None:
    email = template["Parameters"]["AlertEmail"]["AllowedPattern"]
    bucket = template["Parameters"]["StateBucketNames"]["AllowedPattern"]  # per element of the list
    assert re.fullmatch(email, "oncall@example.com") and re.fullmatch(email, "")
    assert not any(re.fullmatch(email, e) for e in ("oncall", "oncall@example", "a b@example.com", "a@b.com;rm"))
    assert re.fullmatch(bucket, "my-terraform-state") and re.fullmatch(bucket, "*")
    assert not any(re.fullmatch(bucket, b) for b in ("My-State", "my_state", "-state", "st", "a" * 64, "**"))


def test_the_console_groups_and_labels_every_parameter(template) -> None:
    interface = template["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for group in interface["ParameterGroups"] for p in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])  # each exactly once
    assert set(interface["ParameterLabels"]) == set(template["Parameters"])
    assert all(label["default"] for label in interface["ParameterLabels"].values())


def test_outputs_say_what_to_do_next(template) -> None:
    stack = Rendered(
        template,
        CHOSEN
        | {"LockTableNames": "terraform-state-lock,platform-locks", "ExtraBucketNames": "lockfile-states", "PeerRegions": "us-east-1"},
    )
    command = stack.output("ScanCommand")
    assert command == (
        "tfjanitor scan --region ap-northeast-2 --table terraform-state-lock --table platform-locks"
        " --bucket lockfile-states --peer-region us-east-1"
    )
    args = build_parser().parse_args(shlex.split(command)[1:])  # the CLI takes it as printed
    assert (args.regions, args.tables, args.buckets, args.peer_regions) == (
        ["ap-northeast-2"],
        ["terraform-state-lock", "platform-locks"],
        ["lockfile-states"],
        ["us-east-1"],
    )
    assert Rendered(template, CHOSEN).output("ScanCommand") == ("tfjanitor scan --region ap-northeast-2 --table terraform-state-lock")

    confirm = stack.output("ConfirmAlertEmail")
    assert confirm is not None and "oncall@example.com" in confirm and '"AWS Notification - Subscription Confirmation"' in confirm
    assert "no alert email arrives" in confirm
    topic_only = {"StateBucketNames": "s", "AlertTopicArn": "arn:aws:sns:us-east-1:123456789012:pd"}
    assert Rendered(template, topic_only).output("ConfirmAlertEmail") is None
    assert template["Outputs"]["AlertTopicArn"]["Value"] == {"Ref": "AlertTopic"}

    urls: dict[str, str] = {}
    for p, r in (("aws", "ap-northeast-2"), ("aws-cn", "cn-north-1"), ("aws-us-gov", "us-gov-west-1")):
        url = Rendered(template, CHOSEN, region=r, partition=p).output("DashboardUrl")
        assert url is not None, p
        urls[p] = url
    assert urls["aws"].startswith("https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home?region=ap-northeast-2#")
    assert urls["aws-cn"].startswith("https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#")
    assert urls["aws-us-gov"].startswith("https://console.amazonaws-us-gov.com/cloudwatch/home?region=us-gov-west-1#")


def test_functions_publish_to_the_stacks_topic_and_to_alert_topic_arn_when_set(template) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]["ALERT_TOPIC_ARN"]
    pager = "arn:aws:sns:us-east-1:123456789012:pd"
    assert Rendered(template, CHOSEN).value(env) == {"Ref": "AlertTopic"}
    assert Rendered(template, CHOSEN | {"AlertTopicArn": pager}).value(env) == "AlertTopic," + pager
    for function in ("SweeperFunction", "AuditorFunction", "StreamMonitorFunction"):
        with_topic = Rendered(template, CHOSEN | {"AlertTopicArn": pager, "LockTableStreamArn": "x"}).statements(function)
        assert [st["Resource"] for st in with_topic if "Action" in st and "sns:Publish" in st["Action"]] == [pager]
        without = Rendered(template, CHOSEN).statements(function)
        assert not [st for st in without if "Action" in st and "sns:Publish" in st["Action"]]


def test_samconfig_sets_the_alert_address_in_one_obvious_place_per_environment(template) -> None:
    from samcli.cli.types import CfnParameterOverridesType

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env in ("default", "seoul", "virginia"):
        lines = config[env]["deploy"]["parameters"]["parameter_overrides"]
        assert isinstance(lines, list) and lines[0].startswith("AlertEmail="), env  # first, one per line
        overrides = CfnParameterOverridesType().convert(lines, None, None)  # as `sam deploy` reads them
        # Until someone writes an address there, the deploy stops at the change set, saying what to set.
        [rule] = check_parameters(template, overrides)
        assert "AlertEmail" in rule
        assert check_parameters(template, overrides | {"AlertEmail": "oncall@example.com"}) == []
    regions = {env: config[env]["deploy"]["parameters"]["region"] for env in ("seoul", "virginia")}
    for env, other in (("seoul", "virginia"), ("virginia", "seoul")):
        assert f"PeerRegions={regions[other]}" in config[env]["deploy"]["parameters"]["parameter_overrides"]
