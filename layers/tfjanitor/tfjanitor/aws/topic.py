"""The alert topic (SNS)."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import AwsSession, _translate


class Topic:
    """The alert topic (SNS). Email subscribers get ``email``; every other protocol (``https``: AWS Chatbot's
    subscriptions for Slack and Teams, ``lambda``, ...) the ``default`` message, the chat card ``chat``;
    queues (``sqs``: e.g. the local runner's capture) all of it, to show it as an email and a card."""

    def __init__(self, aws: AwsSession, region: str, arn: str):
        self._aws = aws
        self._region = region
        self.arn = arn

    def publish(self, subject: str, email: str, plain: str, chat: str) -> str:
        message = {
            "default": chat,
            "email": email,
            "sqs": json.dumps({"subject": subject, "email": email, "plain": plain, "chat": chat}, ensure_ascii=False),
        }
        try:
            resp = self._aws.sns(self._region).publish(
                TopicArn=self.arn, Subject=subject, Message=json.dumps(message, ensure_ascii=False),
                MessageStructure="json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate("Publish", exc) from exc
        return str(resp.get("MessageId", ""))
