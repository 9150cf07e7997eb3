"""The one way paymesh reaches DynamoDB: a boto3 client, called on one thread.

boto3 blocks, so every call to AWS runs in one module-level executor with a single thread:
the event loop stays free while a request is in flight, and the calls of the whole process
(every store in it) reach DynamoDB one at a time. That is also what lets the tests run on
moto's in-process DynamoDB, which is not thread-safe. Everything named `_x` below that
touches `_db` is blocking and runs on that thread (through `_call`), never on the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from paymesh.adapters.dynamodb.changeset import Tables
from paymesh.adapters.dynamodb.items import Item
from paymesh.adapters.dynamodb.schema import check_tables, create_tables
from paymesh.adapters.dynamodb.tables import EVENTS, IDEMPOTENCY, LEDGER, STATE, TRANSACTIONS

R = TypeVar("R")

#: The one thread every AWS call of the process runs on (see the module doc). No thread
#: starts until the first call.
_AWS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paymesh-dynamodb")

_loader: Any = None


def _session() -> boto3.session.Session:
    """A session of its own (its credentials resolved afresh) sharing the one loader of
    AWS's service descriptions: parsing those is most of a client's making, and they are
    the same for every store. Called on the AWS thread only, so the loader is made once."""
    global _loader
    if _loader is None:
        _loader = botocore.loaders.create_loader()
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader)
    return boto3.session.Session(botocore_session=core)


def conditional_failed(err: ClientError) -> bool:
    return bool(err.response["Error"]["Code"] == "ConditionalCheckFailedException")


class Connection:
    """The tables `<prefix>-*` and a client for them, with the lifecycle of a store."""

    def __init__(
        self,
        prefix: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        create_tables: bool = False,
    ) -> None:
        self.prefix = prefix
        self.region = region
        self.endpoint_url = endpoint_url
        self.create_tables = create_tables
        self.tables = Tables(
            transactions=TRANSACTIONS.name(prefix),
            idempotency=IDEMPOTENCY.name(prefix),
            events=EVENTS.name(prefix),
            state=STATE.name(prefix),
            ledger=LEDGER.name(prefix),
        )
        self._client: Any = None

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_AWS, functools.partial(fn, *args))

    @property
    def _db(self) -> Any:
        if self._client is None:
            raise RuntimeError("store is not open")
        return self._client

    def _connect(self) -> Any:
        client = _session().client(
            "dynamodb",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )
        if self.create_tables:
            create_tables(client, self.prefix)
        else:
            check_tables(client, self.prefix)
        return client

    def _get(self, table: str, item_key: Item) -> Item | None:
        item: Item | None = self._db.get_item(
            TableName=table, Key=item_key, ConsistentRead=True
        ).get("Item")
        return item

    def _update(self, **request: Any) -> Item | None:
        """A conditional UpdateItem: the new item, or None when the condition failed."""
        try:
            response = self._db.update_item(ReturnValues="ALL_NEW", **request)
        except ClientError as err:
            if conditional_failed(err):
                return None
            raise
        item: Item = response.get("Attributes", {})
        return item

    def _delete(self, **request: Any) -> bool:
        """A conditional DeleteItem: whether it deleted."""
        try:
            self._db.delete_item(**request)
        except ClientError as err:
            if conditional_failed(err):
                return False
            raise
        return True

    # -- Lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._client = await self._call(self._connect)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._call(client.close)

    async def ping(self) -> bool:
        if self._client is None:
            return False
        try:
            await self._call(
                functools.partial(self._client.describe_table, TableName=self.tables.transactions)
            )
        except Exception:  # whatever failed, the store cannot serve
            return False
        return True
