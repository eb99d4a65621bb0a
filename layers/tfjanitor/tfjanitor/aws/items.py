"""A DynamoDB table of the stack's own (the findings table): conditional writes that report a lost race.

Never Terraform's lock table. Callers pass DynamoDB-typed items and expressions; a failed condition
is an answer (``False`` / ``None``), every other failure an :class:`AwsError`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import AwsSession, _translate

_OPERATIONS = {"put_item": "PutItem", "update_item": "UpdateItem", "delete_item": "DeleteItem"}
_TRANSACT = {"put_item": "Put", "update_item": "Update", "delete_item": "Delete"}
# A cancelled transaction that failed a condition or met a concurrent write wrote nothing and lost a
# race: an answer. ("None" is the reason given for the items that were fine.)
_LOST = {"ConditionalCheckFailed", "TransactionConflict"}


class ItemTable:
    def __init__(self, aws: AwsSession, region: str, table: str):
        self._aws = aws
        self._region = region
        self.name = table

    @property
    def _client(self):  # type: ignore[no-untyped-def]
        return self._aws.dynamodb(self._region)

    def write_if(self, op: str, **kwargs: Any) -> dict[str, Any] | None:
        """Run a conditional ``put_item`` / ``update_item`` / ``delete_item``: the response, or None if the condition failed."""
        try:
            return dict(getattr(self._client, op)(TableName=self.name, **kwargs))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise _translate(_OPERATIONS.get(op, op), exc) from exc
        except BotoCoreError as exc:
            raise _translate(_OPERATIONS.get(op, op), exc) from exc

    def write_both_if(self, first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]], token: str) -> bool:
        """Two conditional writes (``(op, kwargs)`` as for :meth:`write_if`) in one transaction: both or neither.

        False if a condition failed or a concurrent write won (nothing was written). ``token`` makes a
        retried request idempotent (DynamoDB's ClientRequestToken, at most 36 characters).
        """
        items = [{_TRANSACT[op]: {"TableName": self.name, **kwargs}} for op, kwargs in (first, second)]
        try:
            self._client.transact_write_items(TransactItems=items, ClientRequestToken=token)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = {str(r.get("Code")) for r in exc.response.get("CancellationReasons", [])}
                if reasons & _LOST and reasons <= _LOST | {"None"}:
                    return False
            raise _translate("TransactWriteItems", exc) from exc
        except BotoCoreError as exc:
            raise _translate("TransactWriteItems", exc) from exc
        return True

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        try:
            item = self._client.get_item(TableName=self.name, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise _translate("GetItem", exc) from exc
        return item.get("Item")

    def scan(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item (consistent, all pages) matching the filter in ``kwargs``."""
        items: list[dict[str, Any]] = []
        kwargs = {"TableName": self.name, "ConsistentRead": True, **kwargs}
        while True:
            try:
                page = self._client.scan(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise _translate("Scan", exc) from exc
            items += page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
