"""One changeset, one `TransactWriteItems`: each write carries its own condition.

    payment          Put, `attribute_not_exists` (new) or `version = expected`   VersionConflict
    idempotency      Put, absent or expired (a claim), or `leaseToken = expected`
                                                                          IdempotencyConflict
    consumer mark    Put, `attribute_not_exists`                            AlreadyProcessed
    event            Put, `attribute_not_exists`      (a unique key's refusal)   ValueError
    notification     Put, `attribute_not_exists`                                 ValueError
    routed mark      Update: out of the outbox index, if the event exists        skipped
    delivery         Put of its route guard and of itself, both if absent        skipped
    ledger entry     Put, `attribute_not_exists`                                 skipped
    lookups          connector reference and refund id -> payment (no condition)

DynamoDB cancels the whole transaction when any condition fails and names, by position, every
item whose condition failed (`CancellationReasons`): `Transaction.failure` maps those back to
the port's errors, in the order the other backends check them. The "skipped" kinds are
"insert or skip" in SQL (`ON CONFLICT DO NOTHING`), which one transaction cannot say: a
failed one is dropped and the rest retried, which is safe because nothing was written.

A ledger transaction is one of those. Its id derives from the event that booked it, so a
replayed booking (a redelivered webhook, a retried commit) meets its own item; dropping it
keeps the first copy, as the SQL stores do. Putting it unconditionally instead would cost no
second round trip but would rewrite the stored copy (a new `seq`, so a replay would move it
in the booking order) and would trust that whatever is re-sent under an id is what was
booked; reading the ids first would add a read to every commit, and still race a concurrent
commit of the same booking, which the condition settles on the item. Replays are rare, and
each costs one cancelled attempt. Every ledger transaction is an action of the transaction,
so it counts against DynamoDB's 100 (`MAX_ITEMS`) like any other write.

Writes to the same payment twice in one changeset (a chain of versions) become one write of
the last state, conditioned on the first expected version: DynamoDB refuses two operations
on one item in a transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from paymesh.adapters.dynamodb import records
from paymesh.adapters.dynamodb.items import Item, N, S, key, us
from paymesh.domain.ledger import LedgerTransaction
from paymesh.domain.payment import Payment
from paymesh.ports.store import (
    AlreadyProcessed,
    Changeset,
    IdempotencyConflict,
    IdempotencyWrite,
    VersionConflict,
)

T = TypeVar("T")

#: DynamoDB's limit on the actions of one TransactWriteItems.
MAX_ITEMS = 100

#: Failure codes worth retrying the same transaction for, after a pause: another
#: transaction held one of the items, or the table was throttled.
TRANSIENT = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


@dataclass(frozen=True, slots=True)
class Tables:
    """The physical table names of one deployment (prefix)."""

    transactions: str
    idempotency: str
    events: str
    state: str
    ledger: str


@dataclass(slots=True)
class _Action:
    operation: dict[str, Any]
    #: What a failed condition means: an error to raise, or None for a write that is
    #: skipped instead (with every other action of its `group`).
    conflict: Exception | None
    rank: int = 0  # which error wins when several conditions fail
    group: int = -1


@dataclass(slots=True)
class Transaction:
    actions: list[_Action] = field(default_factory=list)

    def items(self) -> list[dict[str, Any]]:
        return [a.operation for a in self.actions]

    def failure(self, reasons: list[dict[str, Any]]) -> Exception | set[int] | None:
        """Given the cancellation reasons (one per action, by position): the error to raise,
        else the groups of skippable writes to drop before retrying, else None (transient:
        retry as is)."""
        failed = [
            (action, reason.get("Code"))
            for action, reason in zip(self.actions, reasons, strict=False)
            if reason.get("Code") not in (None, "None")
        ]
        ranked = [(a.rank, a.conflict) for a, code in failed if code == "ConditionalCheckFailed"]
        conflicts = [(rank, err) for rank, err in ranked if err is not None]
        if conflicts:
            return min(conflicts, key=lambda c: c[0])[1]
        if any(code not in TRANSIENT and code != "ConditionalCheckFailed" for _, code in failed):
            codes = ", ".join(f"{code}" for _, code in failed)
            return RuntimeError(f"DynamoDB cancelled the transaction: {codes}")
        skipped = {a.group for a, code in failed if code == "ConditionalCheckFailed"}
        if -1 in skipped:  # an unconditional write cannot fail its condition: a bug here
            return RuntimeError("DynamoDB refused a write that has no condition")
        return skipped or None

    def without(self, groups: set[int]) -> Transaction:
        return Transaction([a for a in self.actions if a.group < 0 or a.group not in groups])


# Ranks: the order in which the other backends check conditions.
_IDEMPOTENCY, _PROCESSED, _PAYMENT, _UNIQUE = range(4)


_seq_lock = threading.Lock()
_last_ns = 0


def _commit_time_ns() -> int:
    """Wall-clock nanoseconds, strictly increasing within the process: two commits in a row
    never share a time, even when the clock steps back."""
    global _last_ns
    with _seq_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def plan(
    changes: Changeset, tables: Tables, marked_at: datetime, mark_expiry: datetime
) -> Transaction:
    """The transaction for `changes`; raises (writing nothing) for what is refused before
    DynamoDB is asked: a broken version chain, a repeat within the changeset, too many items."""
    tx = Transaction()
    add = tx.actions.append
    if (write := changes.idempotency) is not None:
        add(_idempotency(write, tables.idempotency))
    for consumer, event_id in _unique(
        changes.processed, lambda m: AlreadyProcessed(f"{m[0]} already applied {m[1]}")
    ):
        add(
            _Action(
                {
                    "Put": {
                        "TableName": tables.state,
                        "Item": records.mark_item(consumer, event_id, marked_at, mark_expiry),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                AlreadyProcessed(f"{consumer} already applied {event_id}"),
                _PROCESSED,
            )
        )
    payments = _chains(changes)
    for payment, first_expected, version in payments:
        add(_payment(payment, first_expected, version, tables.transactions))
    tx.actions += _lookups([p for p, _, _ in payments], tables.state)
    tx.actions += _events(changes, tables.events)
    for n in _unique(
        changes.notifications,
        lambda x: ValueError(f"notification {x.id} is already stored"),
        lambda x: (x.merchant_id, x.payment_id, x.id),
    ):
        add(
            _Action(
                {
                    "Put": {
                        "TableName": tables.state,
                        "Item": records.notification_item(n),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                ValueError(f"notification {n.id} is already stored"),
                _UNIQUE,
            )
        )
    tx.actions += _deliveries(changes, tables.state)
    # Skippable groups: after the routed marks' and the deliveries' numbers.
    tx.actions += _ledger(
        changes.ledger, tables.ledger, len(changes.routed) + len(changes.deliveries)
    )
    if len(tx.actions) > MAX_ITEMS:
        raise ValueError(
            f"a changeset of {len(tx.actions)} writes is more than one DynamoDB transaction"
            f" takes ({MAX_ITEMS}); split in two it would no longer be all or nothing"
        )
    return tx


def _unique(
    values: Iterable[T],
    error: Callable[[T], Exception],
    identity: Callable[[T], Hashable] | None = None,
) -> list[T]:
    """`values`, refusing a repeat as the store would refuse its second write."""
    seen: set[Hashable] = set()
    out: list[T] = []
    for v in values:
        k = v if identity is None else identity(v)
        if k in seen:
            raise error(v)
        seen.add(k)
        out.append(v)
    return out


def _idempotency(write: IdempotencyWrite, table: str) -> _Action:
    r = write.record
    put: dict[str, Any] = {"TableName": table, "Item": records.idempotency_item(r)}
    if write.expected_token is None:
        # The claim, in one conditional write: the key is free, or its record has expired.
        put["ConditionExpression"] = "attribute_not_exists(#k) OR #e <= :now"
        put["ExpressionAttributeNames"] = {"#k": "idempotencyKey", "#e": "expiresAt"}
        put["ExpressionAttributeValues"] = {":now": N(us(write.now))}
    else:
        put["ConditionExpression"] = "#t = :token"
        put["ExpressionAttributeNames"] = {"#t": "leaseToken"}
        put["ExpressionAttributeValues"] = {":token": S(write.expected_token)}
    return _Action(
        {"Put": put},
        IdempotencyConflict(f"idempotency key {r.key!r} is held by another request"),
        _IDEMPOTENCY,
    )


def _chains(changes: Changeset) -> list[tuple[Payment, int, int]]:
    """Each payment once: (its last state, the version first expected, the version written).
    A later write must expect the version the earlier one leaves, as in SQL, where the
    writes of one changeset run in turn."""
    chains: dict[str, tuple[Payment, int, int]] = {}
    for w in changes.payments:
        held = chains.get(w.payment.id)
        if held is not None and held[2] != w.expected_version:
            raise VersionConflict(
                f"payment {w.payment.id} changed since version {w.expected_version}"
            )
        first = w.expected_version if held is None else held[1]
        chains[w.payment.id] = (w.payment, first, w.expected_version + 1)
    return list(chains.values())


def _payment(p: Payment, expected: int, version: int, table: str) -> _Action:
    put: dict[str, Any] = {"TableName": table, "Item": records.payment_item(p, version)}
    if expected == 0:
        put["ConditionExpression"] = "attribute_not_exists(transactionId)"
    else:
        put["ConditionExpression"] = "#v = :expected"
        put["ExpressionAttributeNames"] = {"#v": "version"}
        put["ExpressionAttributeValues"] = {":expected": N(expected)}
    return _Action(
        {"Put": put}, VersionConflict(f"payment {p.id} changed since version {expected}"), _PAYMENT
    )


def _lookups(payments: list[Payment], table: str) -> list[_Action]:
    """The state-table items that find a payment by its PSP reference or a refund's id.

    The reference is overwritten (a payment moved to another PSP attempt points its new
    reference at itself; a reader checks the payment still carries it). A refund id stays
    with the payment that first wrote it, as the SQL stores' `ON CONFLICT DO NOTHING`:
    `if_not_exists` says that without a condition that could cancel the transaction."""
    refs: dict[str, _Action] = {}
    refunds: dict[str, _Action] = {}
    for p in payments:
        if p.connector_payment_id is not None:
            pk = key("connref", p.connector, p.connector_payment_id)
            refs[pk] = _Action(
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"pk": S(pk), "sk": S("ref"), "paymentId": S(p.id)},
                    }
                },
                None,
            )
        for r in p.refunds:
            refunds.setdefault(
                r.id,
                _Action(
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": S(key("refund", r.id)), "sk": S("refund")},
                            "UpdateExpression": "SET #p = if_not_exists(#p, :p),"
                            " #m = if_not_exists(#m, :m)",
                            "ExpressionAttributeNames": {"#p": "paymentId", "#m": "merchantId"},
                            "ExpressionAttributeValues": {
                                ":p": S(p.id),
                                ":m": S(p.merchant_id),
                            },
                        }
                    },
                    None,
                ),
            )
    return [*refs.values(), *refunds.values()]


def _events(changes: Changeset, table: str) -> list[_Action]:
    events = _unique(
        changes.events, lambda e: ValueError(f"event {e.id} is already stored"), lambda e: e.id
    )
    routed = dict.fromkeys(changes.routed)
    # `seq`: commit order. The commit's time, then the event's place in it, then its id (so
    # two processes committing in the same nanosecond still never tie).
    at = _commit_time_ns()
    actions = [
        _Action(
            {
                "Put": {
                    "TableName": table,
                    "Item": records.event_item(e, f"{at:020d}.{i:03d}.{e.id}", e.id in routed),
                    "ConditionExpression": "attribute_not_exists(eventId)",
                }
            },
            ValueError(f"event {e.id} is already stored"),
            _UNIQUE,
        )
        for i, e in enumerate(events)
    ]
    written = {e.id for e in events}
    for n, event_id in enumerate(e for e in routed if e not in written):
        actions.append(
            _Action(
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"eventId": S(event_id)},
                        "UpdateExpression": "REMOVE outboxShard",
                        # An unknown event is not created as a stub: skipped, as in SQL.
                        "ConditionExpression": "attribute_exists(eventId)",
                    }
                },
                None,
                group=n,
            )
        )
    return actions


def _deliveries(changes: Changeset, table: str) -> list[_Action]:
    """Each new delivery with its route guard: one delivery per (event, rule, target), as
    the SQL stores' unique key. Routing an event twice skips the second one's writes."""
    actions: list[_Action] = []
    ids: set[str] = set()
    routes: set[tuple[str, str, str]] = set()
    group = len(changes.routed)  # groups after the routed marks'
    for d in changes.deliveries:
        route = (d.event_id, d.rule, d.target.id)
        if d.id in ids or route in routes:
            continue
        ids.add(d.id)
        routes.add(route)
        guard: Item = {**records.route_key(d), "deliveryId": S(d.id)}
        for item in (guard, records.delivery_item(d)):
            actions.append(
                _Action(
                    {
                        "Put": {
                            "TableName": table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    None,
                    group=group,
                )
            )
        group += 1
    return actions


def _ledger(ledger: list[LedgerTransaction], table: str, first_group: int) -> list[_Action]:
    """Each transaction once (see the module doc), in booking order: `seq` is the commit's
    time, then its place in the changeset, then its id, as an event's."""
    once: dict[str, LedgerTransaction] = {}
    for t in ledger:  # DynamoDB refuses two writes of one item in a transaction
        once.setdefault(t.id, t)
    at = _commit_time_ns()
    return [
        _Action(
            {
                "Put": {
                    "TableName": table,
                    "Item": records.ledger_item(t, f"{at:020d}.{i:03d}.{t.id}"),
                    "ConditionExpression": "attribute_not_exists(ledgerId)",
                }
            },
            None,
            group=first_group + i,
        )
        for i, t in enumerate(once.values())
    ]
