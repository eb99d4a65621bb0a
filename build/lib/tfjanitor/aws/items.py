"""A DynamoDB table of the stack's own (the findings table): conditional writes that report a lost race.

Never Terraform's lock table. Callers pass DynamoDB-typed items and expressions; a failed condition
is an answer (``False`` / ``None``), every other failure an :class:`AwsError`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import AwsSession, _translate

_OPERATIONS = {"put_item": "PutItem", "update_item": "UpdateItem", "delete_item": "DeleteItem"}


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
