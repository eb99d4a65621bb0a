"""The alert topic (SNS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:  # pragma: no cover
    pass

from tfjanitor.aws.session import AwsSession, _translate


class Topic:
    """The alert topic (SNS). Email subscribers get ``email``; others the link-free ``default``."""

    def __init__(self, aws: AwsSession, region: str, arn: str):
        self._aws = aws
        self._region = region
        self.arn = arn

    def publish(self, subject: str, email: str, plain: str) -> str:
        import json  # noqa: PLC0415

        message = {
            "default": plain,
            "email": email,
            # Queues (e.g. the local runner's capture) get the whole message, to show it as an email.
            "sqs": json.dumps({"subject": subject, "email": email, "plain": plain}, ensure_ascii=False),
        }
        try:
            resp = self._aws.sns(self._region).publish(
                TopicArn=self.arn, Subject=subject, Message=json.dumps(message, ensure_ascii=False),
                MessageStructure="json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate("Publish", exc) from exc
        return str(resp.get("MessageId", ""))


