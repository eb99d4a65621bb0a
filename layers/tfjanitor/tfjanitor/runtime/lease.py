"""One run of a function at a time, without reserved concurrency: a lease item in the stack's own table.

Reserved concurrency fails the first deploy in an account whose concurrency quota is 10 (new and sandbox
accounts: any reserve takes the unreserved pool below its minimum of 10). Instead, a run takes the lease
``lease#<function>`` with a conditional write (free, or held by a run whose time is up) until its own end (the
Lambda's deadline), and gives it back when it is done. A run that finds the lease held stops at once as
``skipped`` (the ``RunsSkipped`` metric): the run holding it is still sweeping. A run killed mid-way holds it
no longer than its own timeout.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tfjanitor.aws.items import ItemTable
from tfjanitor.aws.session import AwsSession

PREFIX = "lease#"
DEFAULT_HOLD = timedelta(minutes=15)  # without a deadline: Lambda's longest run


def _epoch_us(value: datetime) -> str:
    return str(int(value.timestamp() * 1_000_000))


@dataclass
class Lease:
    """The lease of one function's runs on the stack's table; :meth:`take` before, :meth:`give_back` after."""

    table: ItemTable
    name: str
    token: str = ""

    @classmethod
    def of(cls, aws: AwsSession, region: str, table: str, name: str) -> Lease:
        return cls(ItemTable(aws, region, table), name)

    def take(self, now: datetime, until: datetime) -> bool:
        """Hold the lease until ``until`` unless another run holds it and its time is not up."""
        token = secrets.token_hex(8)
        taken = self.table.write_if(
            "put_item",
            Item={
                "Fingerprint": {"S": PREFIX + self.name},
                "Holder": {"S": token},
                "HeldUntil": {"N": _epoch_us(until)},
                "TakenAt": {"S": now.isoformat()},
                "ExpiresAt": {"N": str(int((until + timedelta(days=1)).timestamp()))},
            },
            ConditionExpression="attribute_not_exists(Fingerprint) OR HeldUntil < :now",
            ExpressionAttributeValues={":now": {"N": _epoch_us(now)}},
        )
        self.token = token if taken is not None else ""
        return taken is not None

    def give_back(self) -> None:
        """Let the next run go (only if this run still holds it)."""
        if self.token:
            self.table.write_if(
                "delete_item",
                Key={"Fingerprint": {"S": PREFIX + self.name}},
                ConditionExpression="Holder = :me",
                ExpressionAttributeValues={":me": {"S": self.token}},
            )
            self.token = ""


def held_until(now: datetime, seconds_left: float | None) -> datetime:
    """When a run that has ``seconds_left`` (its Lambda's remaining time) is surely over."""
    return now + (timedelta(seconds=seconds_left + 5) if seconds_left is not None else DEFAULT_HOLD)
