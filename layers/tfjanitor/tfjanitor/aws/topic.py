"""The alert topic (SNS)."""

from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import AwsError, AwsSession, MessageRefused, _translate

# What SNS answers for a message it will never take as it is (too long, a subject or JSON structure it refuses):
# sending the same message again cannot help. Anything else is worth another try: throttling, 5xx, KMS and
# authorization errors (a key policy or an IAM fix makes them pass), a topic not found (a wrong or deleted
# AlertTopicArn: once fixed, the notice goes), an "Invalid parameter: TopicArn" (the same, before it is fixed).
_REFUSED = {"InvalidParameter", "InvalidParameterValue", "ParamValidationError", "413"}


def refused(exc: AwsError) -> bool:
    """Whether SNS refused this message for what it holds, rather than for a reason that can pass."""
    return exc.code in _REFUSED and "TopicArn" not in exc.message and "TargetArn" not in exc.message


def queue_text(subject: str, email: str, plain: str | None, chat: str) -> str:
    """What a queue subscriber gets (the ``sqs`` key): everything, to show it as an email and a card; without
    the link-free copy when the message must shrink (readers fall back to the email)."""
    doc = {"subject": subject, "email": email, **({"plain": plain} if plain is not None else {}), "chat": chat}
    return json.dumps(doc, ensure_ascii=False)


def message(subject: str, email: str, plain: str | None, chat: str) -> str:
    """The ``Publish`` message (``MessageStructure=json``): one text per protocol."""
    return json.dumps({"default": chat, "email": email, "sqs": queue_text(subject, email, plain, chat)}, ensure_ascii=False)


class Topic:
    """The alert topic (SNS). Email subscribers get ``email``; every other protocol (``https``: AWS Chatbot's
    subscriptions for Slack and Teams, ``lambda``, ...) the ``default`` message, the chat card ``chat``;
    queues (``sqs``: e.g. the local runner's capture) all of it, to show it as an email and a card."""

    def __init__(self, aws: AwsSession, region: str, arn: str):
        self._aws = aws
        self._region = region
        self.arn = arn

    def publish(self, subject: str, email: str, plain: str | None, chat: str) -> str:
        """The ``MessageId`` once SNS accepted it; :class:`MessageRefused` if SNS refused the message itself
        (:func:`refused`), :class:`AwsError` for anything else."""
        try:
            resp = self._aws.sns(self._region).publish(
                TopicArn=self.arn, Subject=subject, Message=message(subject, email, plain, chat), MessageStructure="json"
            )
        except (ClientError, BotoCoreError) as exc:
            error = _translate("Publish", exc)
            if refused(error):
                raise MessageRefused(error.operation, error.code, error.message) from exc
            raise error from exc
        return str(resp.get("MessageId", ""))
