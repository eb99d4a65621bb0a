"""Send a notice as an email through the alert topics (subject made SNS-safe)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from tfjanitor.alerts.emails import SUBJECT_LIMIT, Email, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.aws.session import AwsError
from tfjanitor.aws.topic import Topic


def sns_subject(subject: str) -> str:
    """SNS subjects must be ASCII, without control characters, under 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "replace").decode("ascii")
    cleaned = "".join(c if c.isprintable() else " " for c in ascii_text)
    return cleaned[: SUBJECT_LIMIT - 1]


class SnsNotifier:
    """Publishes each notice to every alert topic: the stack's own and/or the one AlertTopicArn names."""

    def __init__(self, topics: Sequence[Topic]):
        self._topics = list(topics)
        self.sent: list[Email] = []

    def send(self, notice: Notice) -> None:
        email = render(notice)
        failed: list[AwsError] = []
        for topic in self._topics:  # one topic failing does not keep the notice from the others
            try:
                topic.publish(sns_subject(email.subject), email.body, email.plain)
            except AwsError as exc:
                failed.append(exc)
        if failed:
            raise failed[0]
        self.sent.append(email)
