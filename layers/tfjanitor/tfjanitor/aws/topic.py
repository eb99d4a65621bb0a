"""The alert topic (SNS)."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import AwsSession, _translate


def queue_text(subject: str, email: str, plain: str | None, chat: str) -> str:
    """What a queue subscriber gets (the ``sqs`` key): everything, to show it as an email and a card; without
    the link-free copy when the message must shrink (readers fall back to the email)."""
    doc = {"subject": subject, "email": email, **({"plain": plain} if plain is not None else {}), "chat": chat}
    return json.dumps(doc, ensure_ascii=False)


def message(subject: str, email: str, plain: str | None, chat: str) -> str:
    """The ``Publish`` message (``MessageStructure=json``): one text per protocol."""
    return json.dumps({"default": chat, "email": email, "sqs": queue_text(subject, email, plain, chat)},
                      ensure_ascii=False)


class Topic:
    """The alert topic (SNS). Email subscribers get ``email``; every other protocol (``https``: AWS Chatbot's
    subscriptions for Slack and Teams, ``lambda``, ...) the ``default`` message, the chat card ``chat``;
    queues (``sqs``: e.g. the local runner's capture) all of it, to show it as an email and a card."""

    def __init__(self, aws: AwsSession, region: str, arn: str):
        self._aws = aws
        self._region = region
        self.arn = arn

    def publish(self, subject: str, email: str, plain: str | None, chat: str) -> str:
        try:
            resp = self._aws.sns(self._region).publish(
                TopicArn=self.arn, Subject=subject, Message=message(subject, email, plain, chat),
                MessageStructure="json",
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate("Publish", exc) from exc
        return str(resp.get("MessageId", ""))
