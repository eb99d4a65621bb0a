"""The alert emails a local run captured: shown at the terminal, and written as ``.eml`` files (the link-free text
and, as the HTML alternative, the text with its console links)."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path


@dataclass
class CapturedEmail:
    subject: str
    body: str
    plain: str
    received: datetime
    chat: str = ""  # the custom notification AWS Chatbot gets (JSON)


def format_email(email: CapturedEmail) -> str:
    bar = "-" * 78
    return f"\n{bar}\nSubject: {email.subject}\n{bar}\n{email.body}{bar}"


def write_eml(email: CapturedEmail, directory: Path, n: int, to: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    msg = EmailMessage()
    msg["From"] = "tfjanitor <no-reply@sns.amazonaws.com>"
    msg["To"] = to or "on-call@example.com"
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(email.received)
    msg.set_content(email.plain)  # the link-free plain text first ...
    msg.add_alternative(_html(email.body), subtype="html")  # ... and the version with console links
    slug = re.sub(r"[^A-Za-z0-9]+", "-", email.subject.replace("[tfjanitor]", "")).strip("-")[:60]
    path = directory / f"{n:02d}-{slug}.eml"
    path.write_bytes(msg.as_bytes(policy=email_policy.default.clone(max_line_length=998)))
    return path


def _html(text: str) -> str:

    escaped = html.escape(text)
    linked = re.sub(r"(https://[^\s<]+)", r'<a href="\1">\1</a>', escaped)
    return f'<html><body><pre style="font-family: monospace">{linked}</pre></body></html>'
