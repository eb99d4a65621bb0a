"""Send a notice as an email through the alert topic (subject made SNS-safe)."""

from __future__ import annotations

import unicodedata

from tfjanitor.alerts.emails import SUBJECT_LIMIT, Email, render
from tfjanitor.alerts.lifecycle import Notice
from tfjanitor.aws.topic import Topic


def sns_subject(subject: str) -> str:
    """SNS subjects must be ASCII, without control characters, under 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", subject).encode("ascii", "replace").decode("ascii")
    cleaned = "".join(c if c.isprintable() else " " for c in ascii_text)
    return cleaned[: SUBJECT_LIMIT - 1]


class SnsNotifier:
    def __init__(self, topic: Topic):
        self._topic = topic
        self.sent: list[Email] = []

    def send(self, notice: Notice) -> None:
        email = render(notice)
        self._topic.publish(sns_subject(email.subject), email.body, email.plain)
        self.sent.append(email)
