"""How large one notice may grow on each destination, whatever a lock table holds (pure: no AWS).

Lock fields are capped at 1,024 characters where they are parsed (``untrusted.cap``), but a capped field
still grows where it is shown: every control, format or invisible character becomes an escape of up to 10
characters in prose (``\\U000e0041``) and of up to 16 in a quoted command (``$'\\xf3\\xa0\\x81\\x81'``: one
``\\xHH`` per UTF-8 byte), and each layer of JSON around a text (the SNS message, the queue's copy inside it,
SNS's envelope) escapes its backslashes again. So each rendering is measured in the bytes its service
counts and made smaller until it fits its budget below, in this order (the first parts to go are the ones
said elsewhere too; what is wrong and what to do go last):

1. a command line over :data:`COMMAND_BUDGET` is replaced by the ``tfjanitor unlock`` / ``tfjanitor scan``
   line that does the same by reading the lock itself (``emails.fit_commands``; the text says so), and an
   alternative fix with such a line is left out (the scan prints it);
2. the SNS message drops the link-free copy of the email from the queue's text (``aws.topic``: queue readers
   fall back to the email itself);
3. prose is cut, with the visible ``...[truncated, N chars]`` marker, first the facts and labels
   (:attr:`Level.detail`), then the finding's sentence and fix steps (:attr:`Level.essential`); a console
   link longer than :data:`LINK_BUDGET` is left out and the place named instead;
4. the compact form (:data:`COMPACT`): the same headings, every value cut short, the fix as the one
   ``tfjanitor`` line. It is also what a destination that refused a notice for good gets, once
   (``alerts.delivery``).

The budgets are a half to a quarter of each service's limit: the limits count in ways a client can only
approximate (JSON escaping in envelopes we do not write), and no notice needs more.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfjanitor.untrusted import FIELD_LIMIT, LINE_LIMIT

KIB = 1024

# SNS Publish: "messages must be UTF-8 encoded strings and at most 256 KB in size (262,144 bytes, not 262,144
# characters)" (SNS API reference, Publish). With MessageStructure=json that is the whole JSON object, every
# protocol's text together; message attributes count too (we send none). We count the subject in as well (it has
# its own limit: under 100 ASCII characters, ``emails.SUBJECT_LIMIT``).
SNS_LIMIT = 256 * KIB
SNS_BUDGET = 128 * KIB
# An SQS subscriber gets the "sqs" text inside SNS's JSON envelope: escaped once more, plus about 1.5 KB of
# envelope (ids, topic, timestamp, signature, URLs). An SQS message may hold 262,144 bytes (1 MiB since 2025, but
# a queue keeps the MaximumMessageSize it was made with). Measured with every non-ASCII character as a \u escape.
QUEUE_LIMIT = 256 * KIB
QUEUE_BUDGET = 128 * KIB
SNS_ENVELOPE = 2 * KIB
# The email body (the "email" text; its link-free copy likewise): SNS has no limit of its own beyond the message's,
# but Gmail clips a message over 102 KB ("[Message clipped]") behind a link. A normal alert is 2 to 5 KB.
EMAIL_BUDGET = 40 * KIB
# The chat card (the "default" text AWS Chatbot gets, as JSON): Chatbot documents no size of its own beyond SNS's;
# Slack shows at most 3,000 characters in one section (``chat.DESCRIPTION_LIMIT``), and Microsoft Teams refuses a
# message over about 28 KB.
CHAT_BUDGET = 12 * KIB
# EventBridge PutEvents: an entry may hold 256 KB, counted as 14 bytes for Time plus the UTF-8 bytes of Source,
# DetailType, Detail and each Resources entry (EventBridge User Guide, "Calculating PutEvents event entry size";
# the API reference adds "any necessary characters and keys of the JSON representation"). A rule then delivers the
# whole event JSON to its targets, most of which take 256 KB (an SNS topic, an SQS queue, a Lambda function invoked
# asynchronously), some after an input transformer has added to it.
EVENT_LIMIT = 256 * KIB
EVENT_BUDGET = 64 * KIB
# One command line we print: pasted whole at 3 a.m. and still readable. Terraform's own locks make lines of at most
# about 3 KB (the conditional delete-item of a lock whose key is the 1,024 bytes S3 allows carries the key twice).
COMMAND_BUDGET = 4 * KIB
COMPACT_COMMAND_BUDGET = 1 * KIB  # the one line of the compact form
# One console link: a URL over about 2,000 characters is cut or refused by some browsers, proxies and mail scanners,
# and a cut link is worse than none.
LINK_BUDGET = 2000


@dataclass(frozen=True)
class Level:
    """How much prose one rendering keeps: characters of one line of the essentials (the finding's sentence,
    the fix steps, the title) and of the rest (facts, labels, the lock as stored); ``compact``: the compact
    form (every value cut short, the fix as one tfjanitor line)."""

    essential: int
    detail: int
    compact: bool = False


LEVELS: tuple[Level, ...] = (
    Level(LINE_LIMIT, LINE_LIMIT),  # as written: a notice of Terraform's own locks never needs less
    Level(4 * FIELD_LIMIT, FIELD_LIMIT),
    Level(2 * FIELD_LIMIT, FIELD_LIMIT // 4),
    Level(FIELD_LIMIT // 2, FIELD_LIMIT // 8, compact=True),
)
COMPACT = len(LEVELS) - 1  # the index of the compact form


def utf8(text: str) -> int:
    """The bytes a service counts for ``text``."""
    return len(text.encode("utf-8", "surrogatepass"))
