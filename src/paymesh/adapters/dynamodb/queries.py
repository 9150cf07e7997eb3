"""Reading lists out of DynamoDB: paged queries, sharded partitions merged, pages cut exactly.

A query returns one partition of one index in its sort key's order, a page at a time; a list
spread over shards (StatusIndex, the queues) is the shards' queries merged on that key.
Items with equal sort keys come back in no defined order, so `take` reads on past a page's
last sort key until it changes, and orders what it kept by (sort key, id) as the SQL stores
do: a cursor then names one place, whatever the ties.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from paymesh.adapters.dynamodb.items import Item

#: Items asked for per page: a page of results after a filter may need several.
PAGE = 100


@dataclass(slots=True)
class Query:
    """One Query request, built up: the partition, an optional sort-key range and filter."""

    table: str
    index: str | None
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    key: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)

    def bind(self, attribute: str, value: dict[str, Any]) -> tuple[str, str]:
        """Placeholders (#name, :value) for `attribute` and `value`."""
        i = len(self.values)
        self.names[f"#a{i}"] = attribute
        self.values[f":v{i}"] = value
        return f"#a{i}", f":v{i}"

    def partition(self, attribute: str, value: dict[str, Any]) -> Query:
        name, v = self.bind(attribute, value)
        self.key.append(f"{name} = {v}")
        return self

    def sort(self, attribute: str, op: str, value: dict[str, Any]) -> Query:
        name, v = self.bind(attribute, value)
        self.key.append(f"{name} {op} {v}")
        return self

    def between(self, attribute: str, low: dict[str, Any], high: dict[str, Any]) -> Query:
        name, lo = self.bind(attribute, low)
        hi = f":v{len(self.values)}"
        self.values[hi] = high
        self.key.append(f"{name} BETWEEN {lo} AND {hi}")
        return self

    def where(self, attribute: str, op: str, value: dict[str, Any]) -> Query:
        name, v = self.bind(attribute, value)
        self.filters.append(f"{name} {op} {v}")
        return self

    def where_exists(self, attribute: str) -> Query:
        i = len(self.names)
        self.names[f"#x{i}"] = attribute
        self.filters.append(f"attribute_exists(#x{i})")
        return self

    def request(self, forward: bool, limit: int = PAGE) -> dict[str, Any]:
        r: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": " AND ".join(self.key),
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
            "ScanIndexForward": forward,
            "Limit": limit,
        }
        if self.index is None:
            r["ConsistentRead"] = True  # a GSI cannot be read consistently; a table can
        else:
            r["IndexName"] = self.index
        if self.filters:
            # Only the names the filter uses may be left for it; every one is used here.
            r["FilterExpression"] = " AND ".join(self.filters)
        return r


def run(client: Any, query: Query, forward: bool = True, page: int = PAGE) -> Iterator[Item]:
    """Every item `query` matches, in sort key order, reading pages only as they are needed."""
    request = query.request(forward, page)
    while True:
        response = client.query(**request)
        yield from response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        if last is None:
            return
        request = {**request, "ExclusiveStartKey": last}


def merged(
    streams: Iterable[Iterator[Item]], sort_key: Callable[[Item], Any], descending: bool
) -> Iterator[Item]:
    return heapq.merge(*streams, key=sort_key, reverse=descending)


def take(
    stream: Iterable[Item],
    limit: int,
    order: Callable[[Item], tuple[int, str]],
    descending: bool,
    after: tuple[int, str] | None = None,
) -> list[Item]:
    """The first `limit + 1` items of `stream` in (sort key, id) order, past `after`.

    `stream` is ordered by the sort key alone (`order(item)[0]`); ties may come in any order,
    so it is read until the sort key moves past that of the `limit + 1`th item kept."""
    rows: list[Item] = []
    boundary: int | None = None
    for item in stream:
        k = order(item)
        if boundary is not None and k[0] != boundary:
            break
        if after is not None and (k >= after if descending else k <= after):
            continue
        rows.append(item)
        if boundary is None and len(rows) > limit:
            boundary = k[0]
    rows.sort(key=order, reverse=descending)
    return rows[: limit + 1]
