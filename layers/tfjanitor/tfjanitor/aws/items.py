"""A DynamoDB table of the stack's own (the findings table): conditional writes that report a lost race.

Never Terraform's lock table. Callers pass DynamoDB-typed items and expressions; a failed condition
is an answer (``False`` / ``None``), every other failure an :class:`AwsError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tfjanitor.aws.session import CALL_ERRORS, AwsError, AwsSession, _translate

if TYPE_CHECKING:  # the stubs, for the checker only (boto3-stubs: never in the layer)
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT = 100

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
    def _client(self) -> DynamoDBClient:
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
        # Any: each entry is keyed by its operation's name (Put, Update, Delete), which the stubs type as literals.
        items: list[Any] = [{_TRANSACT[op]: {"TableName": self.name, **kwargs}} for op, kwargs in (first, second)]
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

    def get_many(self, fingerprints: list[str]) -> dict[str, dict[str, Any]]:
        """Consistent BatchGetItem of the given keys; absent ones are left out."""
        return batch_get(self._client, self.name, "Fingerprint", fingerprints)

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


def batch_get(client: Any, table: str, key_attribute: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Consistent BatchGetItem of items whose String key ``key_attribute`` is one of ``ids`` (100 a call,
    unprocessed keys retried); absent ones are left out."""
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH_GET_LIMIT):
        request: dict[str, Any] = {
            table: {"Keys": [{key_attribute: {"S": i}} for i in unique[start : start + BATCH_GET_LIMIT]], "ConsistentRead": True}
        }
        for _ in range(10):
            try:
                resp = client.batch_get_item(RequestItems=request)
            except CALL_ERRORS as exc:
                raise _translate("BatchGetItem", exc) from exc
            for item in resp.get("Responses", {}).get(table, []):
                found[item[key_attribute]["S"]] = item
            request = resp.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise AwsError("BatchGetItem", "UnprocessedKeys", "keys left unprocessed after 10 tries")
    return found
