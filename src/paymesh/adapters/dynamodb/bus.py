"""The event bus's tables on DynamoDB: rules and deliveries, in the state table.

Rules live in one partition (few, and the router reads them all at once). A delivery is one
item; while pending it sits in a `due#NN` queue of QueueIndex at the time it may next be
claimed (its next attempt, or the end of its lease), and when dead in its merchant's
`dead#<merchant>` queue at its last attempt's time, so both lists are range queries. A
delivered one leaves both. Deliveries are created by routing, in a commit (`changeset.py`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from paymesh.adapters.codec import decode_json, delivery_to_doc, rule_from_doc, rule_to_doc
from paymesh.adapters.dynamodb import records
from paymesh.adapters.dynamodb.connection import Connection
from paymesh.adapters.dynamodb.items import B, Item, N, S, b, key, n, padded, s, seconds, us
from paymesh.adapters.dynamodb.queries import Query, merged, run
from paymesh.adapters.dynamodb.tables import QUEUE_SHARDS
from paymesh.ports.bus import Delivery, Rule, target_label


def queue_shards(name: str) -> list[str]:
    """The QueueIndex partitions a queue named `name` is spread over."""
    return [key(name, f"{i:02d}") for i in range(QUEUE_SHARDS)]


class BusTables(Connection):
    """Implements `paymesh.ports.bus.BusStore`."""

    #: When DynamoDB's TTL may delete a consumer mark (the store's): a delivered delivery,
    #: routing's once-only record, lives as long.
    mark_ttl: timedelta

    # -- RuleStore --------------------------------------------------------------------------

    def _rule_key(self, merchant_id: str, name: str) -> Item:
        return {"pk": S("rules"), "sk": S(key(merchant_id, name))}

    def _put_rule(self, rule: Rule) -> None:
        self._db.put_item(
            TableName=self.tables.state,
            Item={**self._rule_key(rule.merchant_id, rule.name), "doc": B(rule_to_doc(rule))},
        )

    async def put_rule(self, rule: Rule) -> None:
        await self._call(self._put_rule, rule)

    def _delete_rule(self, merchant_id: str, name: str) -> bool:
        old = self._db.delete_item(
            TableName=self.tables.state,
            Key=self._rule_key(merchant_id, name),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in old

    async def delete_rule(self, merchant_id: str, name: str) -> bool:
        return await self._call(self._delete_rule, merchant_id, name)

    def _rules(self) -> list[Rule]:
        # Every merchant's rules in one partition: the router compiles them all at once.
        qq = Query(self.tables.state, None).partition("pk", S("rules"))
        rules = [rule_from_doc(b(i, "doc")) for i in run(self._db, qq)]
        return sorted(rules, key=lambda r: (r.merchant_id, r.name))

    async def rules(self) -> list[Rule]:
        return await self._call(self._rules)

    # -- DeliveryStore ----------------------------------------------------------------------

    def _due(self, before: str | None) -> Iterator[Item]:
        def shard(partition: str) -> Iterator[Item]:
            qq = Query(self.tables.state, "QueueIndex").partition("queue", S(partition))
            if before is not None:
                qq.sort("position", "<", S(before))
            return run(self._db, qq)

        return merged((shard(p) for p in queue_shards("due")), lambda i: s(i, "position"), False)

    def _claim(self, now: datetime, lease_seconds: float, limit: int) -> list[Delivery]:
        now_us = us(now)
        until = us(now + timedelta(seconds=lease_seconds))
        claimed: list[Delivery] = []
        # A pending delivery's position is the time it may next be claimed: its next
        # attempt, or the end of its lease. So what the index lists before `now` is due.
        for item in self._due(padded(now_us + 1)):
            if len(claimed) >= limit:
                break
            did = s(item, "deliveryId")
            # The lease is one conditional update on the item: of two workers that listed
            # the same delivery, the second finds it leased and passes over it.
            leased = self._update(
                TableName=self.tables.state,
                Key=records.delivery_key(did),
                UpdateExpression="SET #l = :until, #p = :position",
                ConditionExpression="#st = :pending AND #n <= :now AND #l <= :now",
                ExpressionAttributeNames={
                    "#l": "lockedUntil",
                    "#p": "position",
                    "#st": "status",
                    "#n": "nextAttemptAt",
                },
                ExpressionAttributeValues={
                    ":until": N(until),
                    ":position": S(records.queue_position(until, did)),
                    ":pending": S("pending"),
                    ":now": N(now_us),
                },
            )
            if leased is not None:
                claimed.append(records.delivery_of(leased))
        return claimed

    async def claim_deliveries(
        self, now: datetime, lease_seconds: float, limit: int
    ) -> list[Delivery]:
        return await self._call(self._claim, now, lease_seconds, limit)

    def _release_leases(self) -> int:
        released = 0
        for item in list(self._due(None)):
            if n(item, "lockedUntil") <= records.NO_LEASE:
                continue
            did = s(item, "deliveryId")
            due = n(item, "nextAttemptAt")
            released += (
                self._update(
                    TableName=self.tables.state,
                    Key=records.delivery_key(did),
                    UpdateExpression="SET #l = :zero, #p = :position",
                    ConditionExpression="#st = :pending AND #n = :due AND #l > :zero",
                    ExpressionAttributeNames={
                        "#l": "lockedUntil",
                        "#p": "position",
                        "#st": "status",
                        "#n": "nextAttemptAt",
                    },
                    ExpressionAttributeValues={
                        ":zero": N(records.NO_LEASE),
                        ":position": S(records.queue_position(due, did)),
                        ":pending": S("pending"),
                        ":due": N(due),
                    },
                )
                is not None
            )
        return released

    async def release_leases(self) -> int:
        return await self._call(self._release_leases)

    def _save_delivery(self, d: Delivery) -> None:
        updated_at = d.history[-1].at if d.history else d.created_at
        updated = us(updated_at)
        names = {
            "#st": "status",
            "#a": "attempts",
            "#n": "nextAttemptAt",
            "#l": "lockedUntil",
            "#u": "updatedAt",
            "#d": "doc",
            "#q": "queue",
            "#p": "position",
        }
        values: dict[str, Any] = {
            ":st": S(d.status),
            ":a": N(d.attempts),
            ":n": N(us(d.next_attempt_at)),
            ":zero": N(records.NO_LEASE),
            ":u": N(updated),
            ":d": B(delivery_to_doc(d)),
        }
        update = "SET #st = :st, #a = :a, #n = :n, #l = :zero, #u = :u, #d = :d"
        if d.status == "pending":
            update += ", #q = :q, #p = :p"
            values[":q"] = S(records.due_queue(d.id))
            values[":p"] = S(records.queue_position(us(d.next_attempt_at), d.id))
        elif d.status == "dead":
            # Into the dead letters of the merchant it was routed for, whatever `d` says:
            # the stored `deadQueue`, copied, not one built from the saved object.
            update += ", #q = #dq, #p = :p"
            names["#dq"] = "deadQueue"
            values[":p"] = S(records.queue_position(updated, d.id))
            # Listed before the delivery dies, so a crash between the two writes leaves a
            # merchant listed with nothing dead (one empty query), never a letter uncounted.
            self._list_dead_merchant(d.merchant_id)
        else:
            # Delivered: DynamoDB's TTL deletes it once a consumer mark would be gone too
            # (a delivery is routing's once-only record; see service/housekeeping.py).
            update += ", #t = :t REMOVE #q, #p"
            names["#t"] = "ttl"
            values[":t"] = N(seconds(updated_at + self.mark_ttl))
        saved = self._update(
            TableName=self.tables.state,
            Key=records.delivery_key(d.id),
            UpdateExpression=update,
            ConditionExpression="attribute_exists(pk)",  # an unknown delivery stays unknown
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if saved is not None and d.status == "dead" and s(saved, "merchantId") != d.merchant_id:
            # It went to the dead letters of the merchant it was routed for: list that one.
            self._list_dead_merchant(s(saved, "merchantId"))

    def _list_dead_merchant(self, merchant_id: str) -> None:
        # Idempotent, and only when a delivery dies: rare.
        self._db.put_item(TableName=self.tables.state, Item=records.dead_merchant_item(merchant_id))

    async def save_delivery(self, delivery: Delivery) -> None:
        await self._call(self._save_delivery, delivery)

    def _dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        qq = Query(self.tables.state, "QueueIndex")
        qq.partition("queue", S(records.dead_queue(merchant_id)))
        if starting_after is not None:
            cursor = self._get(self.tables.state, records.delivery_key(starting_after))
            if cursor is None or s(cursor, "merchantId") != merchant_id:
                return [], False
            position = records.queue_position(n(cursor, "updatedAt"), starting_after)
            qq.sort("position", "<", S(position))
        rows = list(itertools.islice(run(self._db, qq, forward=False, page=limit + 1), limit + 1))
        return [records.delivery_of(i) for i in rows[:limit]], len(rows) > limit

    async def dead_letters(
        self, merchant_id: str, limit: int, starting_after: str | None
    ) -> tuple[list[Delivery], bool]:
        return await self._call(self._dead_letters, merchant_id, limit, starting_after)

    def _dead_letter_depth(self) -> dict[str, int]:
        # No index lists the `dead#<merchant>` partitions, and a Scan reads the whole table.
        # So: the merchants that have had a dead letter (one partition, written when a
        # delivery dies) and, for letters made before this list existed, those with API keys
        # (one partition), then one Query per merchant's dead-letter queue. A sparse index over
        # dead letters alone would be one Query, but is a new GSI on every deployed table.
        listed = Query(self.tables.state, None).partition("pk", S(records.DEAD_MERCHANTS))
        keys = Query(self.tables.state, None).partition("pk", S(records.API_KEYS))
        merchants = {s(i, "sk") for i in run(self._db, listed)}
        merchants.update(s(i, "merchantId") for i in run(self._db, keys))
        depth: Counter[str] = Counter()
        for merchant in sorted(merchants):
            qq = Query(self.tables.state, "QueueIndex")
            qq.partition("queue", S(records.dead_queue(merchant)))
            for item in run(self._db, qq):
                d = records.delivery_of(item)
                depth[target_label(d.target, d.default_rule)] += 1
        return dict(depth)

    async def dead_letter_depth(self) -> dict[str, int]:
        return await self._call(self._dead_letter_depth)

    def _redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        return (
            self._update(
                TableName=self.tables.state,
                Key=records.delivery_key(delivery_id),
                UpdateExpression="SET #st = :pending, #a = :zero, #n = :now, #l = :zero,"
                " #q = :q, #p = :p",
                # Dead -> pending once: a second redrive finds it pending and does nothing.
                ConditionExpression="#m = :m AND #st = :dead",
                ExpressionAttributeNames={
                    "#st": "status",
                    "#a": "attempts",
                    "#n": "nextAttemptAt",
                    "#l": "lockedUntil",
                    "#q": "queue",
                    "#p": "position",
                    "#m": "merchantId",
                },
                ExpressionAttributeValues={
                    ":pending": S("pending"),
                    ":dead": S("dead"),
                    ":zero": N(0),
                    ":now": N(us(now)),
                    ":m": S(merchant_id),
                    ":q": S(records.due_queue(delivery_id)),
                    ":p": S(records.queue_position(us(now), delivery_id)),
                },
            )
            is not None
        )

    async def redrive(self, merchant_id: str, delivery_id: str, now: datetime) -> bool:
        return await self._call(self._redrive, merchant_id, delivery_id, now)

    def _event(self, event_id: str) -> dict[str, Any] | None:
        item = self._get(self.tables.events, {"eventId": S(event_id)})
        return None if item is None else dict(decode_json(b(item, "envelope")))

    async def get_event(self, event_id: str) -> dict[str, Any] | None:
        return await self._call(self._event, event_id)
