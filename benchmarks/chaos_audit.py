"""The audit after a chaos run: paymesh's store against the PSPs' own records.

Pure, apart from `read_store`: `audit` takes what clients were told (`Acknowledged`), what
paymesh's store holds (`StoreSnapshot`, read read-only once the server has stopped), what
each PSP sandbox recorded (`LedgerEntry`, from its `GET /_ledger`) and how the restarts went,
and returns one `Check` per promise of DESIGN.md's invariants, each breach spelt out with
the payment's store record, its ledger rows and its timeline. `chaos.py` runs the chaos and
prints the checks; `tests/unit/test_chaos_audit.py` feeds them fabricated breaches, so the
audit is shown to fail when it should.

    check                                  breach when
    acknowledged payments exist            a 2xx/402 answer's payment is missing, has another
                                           amount, or went back in the state machine
    acknowledged captures, cancels, ...    an acknowledged capture/cancel/refund is not stored
    one payment per client order           two payments carry one order (a key ran twice)
    no PSP charge without a payment        a charged ledger row names no stored payment
    no payment charged twice               two charged ledger rows name one payment
    PSP captured = paymesh captured        the PSP took another amount than paymesh records,
                                           or under another reference
    no payment stuck pending/processing    recovery left one unsettled
    refund totals match                    the PSP refunded another amount than paymesh records
    no refund stuck pending                a refund nobody will settle
    payment.succeeded confirmed once       not exactly one confirmation per event, or a
                                           captured payment without its event
    outbox drained                         events never routed, deliveries still pending
    idempotent replays                     a replay answered with another payment
    no key held past its lease             a retry told 409 `idempotency_key_in_use` for
                                           longer than the 60 s lease (plus 10 s)
    kills survived                         a restart that never served again

Report rows (never a breach): restart-to-serving times, dead letters, 5xx answers.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from paymesh.domain.status import CAPTURED, TRANSITIONS, UNSETTLED, PaymentStatus
from paymesh.service.idempotency import LEASE

__all__ = [
    "AckCancel",
    "AckCapture",
    "AckPayment",
    "AckRefund",
    "Acknowledged",
    "Check",
    "DeliveryRow",
    "EventRow",
    "KeyWait",
    "LedgerEntry",
    "NotificationRow",
    "Replay",
    "Restart",
    "StoreSnapshot",
    "audit",
    "failed",
    "read_store",
]

#: How many breaches a check keeps in full; the count is always exact.
DETAIL_LIMIT = 50
#: A killed request's key is free once its lease has run out; a client retrying with backoff
#: (at most 2 s apart) is answered well within this.
KEY_HELD_LIMIT_S = LEASE.total_seconds() + 10


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class AckPayment:
    """A payment a client got a 2xx or 402 answer for; `status` as last answered."""

    order_id: str
    payment_id: str
    amount: int
    currency: str
    status: str


@dataclass(frozen=True, slots=True)
class AckCapture:
    payment_id: str
    amount_captured: int


@dataclass(frozen=True, slots=True)
class AckCancel:
    payment_id: str


@dataclass(frozen=True, slots=True)
class AckRefund:
    payment_id: str
    refund_id: str
    amount: int
    status: str


@dataclass(frozen=True, slots=True)
class Replay:
    """The same create request sent again with its key after it was acknowledged."""

    order_id: str
    first_id: str
    replay_id: str | None


@dataclass
class Acknowledged:
    """Everything clients were told; what a 2xx promised must be in the store."""

    payments: dict[str, AckPayment] = field(default_factory=dict)
    captures: list[AckCapture] = field(default_factory=list)
    cancels: list[AckCancel] = field(default_factory=list)
    refunds: list[AckRefund] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KeyWait:
    """A request answered 409 `idempotency_key_in_use`: how long until it got a real answer
    (or its client gave up)."""

    request: str
    waited_s: float
    answered: bool


@dataclass(frozen=True, slots=True)
class Restart:
    """One kill and what followed: seconds from spawn to /readyz 200 and to a paid probe;
    `cut` counts the clients' writes in flight at the kill."""

    kind: str
    at_s: float
    ready_s: float | None
    serving_s: float | None
    cut: int = 0


@dataclass(frozen=True, slots=True)
class EventRow:
    id: str
    payment_id: str
    type: str
    delivered: bool


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    event_id: str
    rule: str
    target_id: str
    status: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: str
    payment_id: str
    event_id: str


@dataclass
class StoreSnapshot:
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> document
    events: list[EventRow] = field(default_factory=list)  # outbox order
    deliveries: list[DeliveryRow] = field(default_factory=list)
    notifications: list[NotificationRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of a sandbox's `GET /_ledger` (see paymesh.sandbox.ledger.LedgerRow)."""

    psp: str
    psp_reference: str
    reference: str | None
    currency: str
    amount: int
    amount_captured: int
    amount_refunded: int
    status: str
    charged: bool

    @classmethod
    def from_json(cls, psp: str, row: Mapping[str, Any]) -> LedgerEntry:
        return cls(
            psp=psp,
            psp_reference=row["psp_reference"],
            reference=row["reference"],
            currency=row["currency"],
            amount=row["amount"],
            amount_captured=row["amount_captured"],
            amount_refunded=row["amount_refunded"],
            status=row["status"],
            charged=row["charged"],
        )


def read_store(db_path: Path) -> StoreSnapshot:
    """Everything the audit needs from paymesh's SQLite file, opened read-only."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        payments = {
            pid: json.loads(doc) for pid, doc in conn.execute("SELECT id, doc FROM payments")
        }
        events = [
            EventRow(eid, pid, kind, bool(delivered))
            for eid, pid, kind, delivered in conn.execute(
                "SELECT id, payment_id, type, delivered FROM events ORDER BY seq"
            )
        ]
        deliveries = [
            DeliveryRow(did, eid, rule, target, status, attempts, _last_error(doc))
            for did, eid, rule, target, status, attempts, doc in conn.execute(
                "SELECT id, event_id, rule, target_id, status, attempts, doc FROM deliveries"
            )
        ]
        notifications = [
            NotificationRow(nid, pid, eid)
            for nid, pid, eid in conn.execute("SELECT id, payment_id, event_id FROM notifications")
        ]
    finally:
        conn.close()
    return StoreSnapshot(payments, events, deliveries, notifications)


def _last_error(doc: bytes | str) -> str | None:
    history = json.loads(doc).get("history") or []
    return str(history[-1]["error"]) if history else None


# --------------------------------------------------------------------------- results


@dataclass
class Check:
    """One audited promise. A `report` row informs and never fails the run."""

    name: str
    checked: int
    breaches: list[str] = field(default_factory=list)
    breach_count: int = 0
    kind: Literal["invariant", "report"] = "invariant"
    summary: str = ""

    @property
    def failed(self) -> bool:
        return self.kind == "invariant" and self.breach_count > 0

    def breach(self, detail: str) -> None:
        self.breach_count += 1
        if len(self.breaches) < DETAIL_LIMIT:
            self.breaches.append(detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "checked": self.checked,
            "breaches": self.breach_count if self.kind == "invariant" else None,
            "summary": self.summary,
            "detail": self.breaches,
        }


# --------------------------------------------------------------------------- the audit


class _Facts:
    """The store and the ledgers indexed by payment, and how to describe one payment."""

    def __init__(self, store: StoreSnapshot, ledger: Sequence[LedgerEntry]) -> None:
        self.store = store
        self.ledger = ledger
        self.rows_of: dict[str, list[LedgerEntry]] = defaultdict(list)
        for row in ledger:
            if row.reference is not None:
                self.rows_of[row.reference].append(row)
        self.timeline: dict[str, list[str]] = defaultdict(list)
        for event in store.events:
            self.timeline[event.payment_id].append(event.type)

    def describe(self, payment_id: str) -> str:
        doc = self.store.payments.get(payment_id)
        if doc is None:
            stored = "not in the store"
        else:
            refunds = (
                ", ".join(f"{r['id']} {r['amount']} {r['status']}" for r in doc.get("refunds", []))
                or "none"
            )
            retired = doc.get("retired_refs") or []
            stored = (
                f"store: {doc['status']} amount={doc['amount']} {doc['currency']} "
                f"captured={doc['amount_captured']} refunded={doc['amount_refunded']} "
                f"on {doc['connector']} ref={doc['connector_payment_id']} "
                f"attempt={doc.get('attempt')}"
                + (f" retired={retired}" if retired else "")
                + f"; refunds: {refunds}"
            )
        rows = (
            "; ".join(
                f"{r.psp} {r.psp_reference} {r.status} amount={r.amount} "
                f"captured={r.amount_captured} refunded={r.amount_refunded}"
                for r in self.rows_of.get(payment_id, [])
            )
            or "no rows"
        )
        events = " > ".join(self.timeline.get(payment_id, [])) or "none"
        return f"{payment_id}: {stored} | ledger: {rows} | events: {events}"


def audit(
    acks: Acknowledged,
    store: StoreSnapshot,
    ledger: Sequence[LedgerEntry],
    restarts: Sequence[Restart],
    answers: Mapping[str, int] | None = None,
    key_waits: Sequence[KeyWait] = (),
) -> list[Check]:
    """Every check, invariants first. `answers` counts the HTTP answers clients got;
    `key_waits` has every request answered 409 idempotency_key_in_use."""
    facts = _Facts(store, ledger)
    return [
        _acknowledged_payments(acks, facts),
        _acknowledged_changes(acks, facts),
        _one_payment_per_order(facts),
        _no_charge_without_payment(facts),
        _no_double_charge(facts),
        _captured_amounts_agree(facts),
        _nothing_unsettled(facts),
        _refund_totals_agree(facts),
        _no_refund_pending(facts),
        _confirmed_once(facts),
        _outbox_drained(facts),
        _replays(acks),
        _keys_released(key_waits),
        _kills_survived(restarts),
        _restart_times(restarts),
        _dead_letters(facts),
        _server_errors(answers or {}),
    ]


def _reachable(start: str) -> frozenset[str]:
    """Statuses a payment may be in after one that was `start`, `start` included.

    The table's moves, plus the one move against it: a retryable failure's new attempt
    (failed -> pending)."""
    edges: dict[str, set[str]] = {s.value: {t.value for t in to} for s, to in TRANSITIONS.items()}
    edges[PaymentStatus.FAILED.value].add(PaymentStatus.PENDING.value)
    seen = {start}
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def _acknowledged_payments(acks: Acknowledged, facts: _Facts) -> Check:
    check = Check(
        "every acknowledged payment exists (id, amount, no step back)", len(acks.payments)
    )
    for ack in acks.payments.values():
        doc = facts.store.payments.get(ack.payment_id)
        if doc is None:
            check.breach(
                f"answered {ack.status} for order {ack.order_id}, {facts.describe(ack.payment_id)}"
            )
        elif (doc["amount"], doc["currency"]) != (ack.amount, ack.currency):
            check.breach(f"answered {ack.amount} {ack.currency}, {facts.describe(ack.payment_id)}")
        elif doc["status"] not in _reachable(ack.status):
            check.breach(f"answered {ack.status}, {facts.describe(ack.payment_id)}")
    return check


def _acknowledged_changes(acks: Acknowledged, facts: _Facts) -> Check:
    checked = len(acks.captures) + len(acks.cancels) + len(acks.refunds)
    check = Check("every acknowledged capture, cancel and refund is stored", checked)
    payments = facts.store.payments
    captured = {s.value for s in CAPTURED}
    for cap in acks.captures:
        doc = payments.get(cap.payment_id)
        if (
            doc is None
            or doc["status"] not in captured
            or doc["amount_captured"] != cap.amount_captured
        ):
            check.breach(
                f"capture of {cap.amount_captured} answered, {facts.describe(cap.payment_id)}"
            )
    for cancel in acks.cancels:
        doc = payments.get(cancel.payment_id)
        if doc is None or doc["status"] != PaymentStatus.CANCELED.value:
            check.breach(f"cancel answered, {facts.describe(cancel.payment_id)}")
    for refund in acks.refunds:
        doc = payments.get(refund.payment_id)
        stored = {r["id"]: r for r in doc.get("refunds", [])} if doc else {}
        found = stored.get(refund.refund_id)
        if (
            found is None
            or found["amount"] != refund.amount
            or (refund.status != "pending" and found["status"] != refund.status)
        ):
            check.breach(
                f"refund {refund.refund_id} of {refund.amount} answered "
                f"{refund.status}, {facts.describe(refund.payment_id)}"
            )
    return check


def _one_payment_per_order(facts: _Facts) -> Check:
    by_order: dict[str, list[str]] = defaultdict(list)
    for pid, doc in facts.store.payments.items():
        order = (doc.get("metadata") or {}).get("order_id")
        if order is not None:
            by_order[order].append(pid)
    check = Check("one payment per client order (each key ran once)", len(by_order))
    for order, ids in sorted(by_order.items()):
        if len(ids) > 1:
            check.breach(
                f"order {order} has {len(ids)} payments: "
                + " || ".join(facts.describe(pid) for pid in sorted(ids))
            )
    return check


def _charged(facts: _Facts) -> list[LedgerEntry]:
    return [row for row in facts.ledger if row.charged]


def _no_charge_without_payment(facts: _Facts) -> Check:
    charged = _charged(facts)
    check = Check("no PSP charge without a paymesh payment", len(charged))
    for row in charged:
        if row.reference is None or row.reference not in facts.store.payments:
            check.breach(
                f"{row.psp} {row.psp_reference} took {row.amount_captured} "
                f"{row.currency} for reference {row.reference!r}, which paymesh "
                "does not have"
            )
    return check


def _no_double_charge(facts: _Facts) -> Check:
    per_payment: dict[str, list[LedgerEntry]] = defaultdict(list)
    for row in _charged(facts):
        if row.reference is not None:
            per_payment[row.reference].append(row)
    check = Check("no payment charged twice (all three PSPs)", len(per_payment))
    for pid, rows in sorted(per_payment.items()):
        if len(rows) > 1:
            check.breach(f"{len(rows)} charges, {facts.describe(pid)}")
    return check


def _captured_amounts_agree(facts: _Facts) -> Check:
    check = Check(
        "PSP captured = paymesh amount_captured (same PSP and reference)", len(facts.store.payments)
    )
    captured = {s.value for s in CAPTURED}
    for pid, doc in sorted(facts.store.payments.items()):
        rows = facts.rows_of.get(pid, [])
        at_psp = sum(row.amount_captured for row in rows)
        ours = doc["amount_captured"] if doc["status"] in captured else 0
        if at_psp != ours:
            check.breach(f"PSP took {at_psp}, paymesh says {ours}: {facts.describe(pid)}")
        elif any(
            (row.psp, row.psp_reference) != (doc["connector"], doc["connector_payment_id"])
            for row in rows
            if row.charged
        ):
            check.breach(f"charged elsewhere than paymesh records: {facts.describe(pid)}")
    return check


def _nothing_unsettled(facts: _Facts) -> Check:
    unsettled = {s.value for s in UNSETTLED}
    check = Check("no payment left pending/processing after recovery", len(facts.store.payments))
    for pid, doc in sorted(facts.store.payments.items()):
        if doc["status"] in unsettled:
            check.breach(facts.describe(pid))
    return check


def _refund_totals_agree(facts: _Facts) -> Check:
    check = Check("refund totals match the PSP", len(facts.store.payments))
    for pid, doc in sorted(facts.store.payments.items()):
        at_psp = sum(row.amount_refunded for row in facts.rows_of.get(pid, []))
        if at_psp != doc["amount_refunded"]:
            check.breach(
                f"PSP refunded {at_psp}, paymesh says {doc['amount_refunded']}: "
                f"{facts.describe(pid)}"
            )
    return check


def _no_refund_pending(facts: _Facts) -> Check:
    refunds = [
        (pid, r)
        for pid, doc in sorted(facts.store.payments.items())
        for r in doc.get("refunds", [])
    ]
    check = Check("no refund left pending after recovery", len(refunds))
    for pid, refund in refunds:
        if refund["status"] == "pending":
            check.breach(f"refund {refund['id']} of {refund['amount']}: {facts.describe(pid)}")
    return check


def _confirmed_once(facts: _Facts) -> Check:
    succeeded = [e for e in facts.store.events if e.type == "payment.succeeded"]
    check = Check("every payment.succeeded confirmed exactly once", len(succeeded))
    sent = Counter(n.event_id for n in facts.store.notifications)
    per_payment = Counter(e.payment_id for e in succeeded)
    for event in succeeded:
        if sent[event.id] != 1:
            check.breach(
                f"event {event.id}: {sent[event.id]} confirmations, "
                f"{facts.describe(event.payment_id)}"
            )
    for pid, count in sorted(per_payment.items()):
        if count > 1:
            check.breach(f"{count} payment.succeeded events, {facts.describe(pid)}")
    captured = {s.value for s in CAPTURED}
    for pid, doc in sorted(facts.store.payments.items()):
        if doc["status"] in captured and per_payment[pid] == 0:
            check.breach(f"captured without a payment.succeeded event, {facts.describe(pid)}")
    return check


def _outbox_drained(facts: _Facts) -> Check:
    events, deliveries = facts.store.events, facts.store.deliveries
    check = Check(
        "outbox drained (events routed, no delivery pending)", len(events) + len(deliveries)
    )
    for event in events:
        if not event.delivered:
            check.breach(f"event {event.id} {event.type} of {event.payment_id} never routed")
    for d in deliveries:
        if d.status == "pending":
            check.breach(
                f"delivery {d.id} of event {d.event_id} to {d.rule}/{d.target_id} "
                f"pending after {d.attempts} attempts (last error: {d.last_error})"
            )
    dead = sum(1 for d in deliveries if d.status == "dead")
    check.summary = f"{len(events)} events, {len(deliveries)} deliveries, {dead} dead letters"
    return check


def _replays(acks: Acknowledged) -> Check:
    check = Check("idempotent replays answer the same payment", len(acks.replays))
    for replay in acks.replays:
        if replay.replay_id != replay.first_id:
            check.breach(
                f"order {replay.order_id}: first {replay.first_id}, replay {replay.replay_id}"
            )
    return check


def _kills_survived(restarts: Sequence[Restart]) -> Check:
    check = Check("kills survived (restarted and served a payment)", len(restarts))
    cutting = [r.cut for r in restarts if r.cut]
    check.summary = (
        f"{len(cutting)} kills cut {sum(cutting)} requests in flight" if restarts else ""
    )
    for n, r in enumerate(restarts, 1):
        if r.serving_s is None:
            check.breach(
                f"kill {n} of {r.kind} at {r.at_s:.1f}s: "
                + (
                    "never ready"
                    if r.ready_s is None
                    else f"ready after {r.ready_s:.2f}s but no payment succeeded"
                )
            )
    return check


def _restart_times(restarts: Sequence[Restart]) -> Check:
    serving = sorted(r.serving_s for r in restarts if r.serving_s is not None)
    ready = sorted(r.ready_s for r in restarts if r.ready_s is not None)
    check = Check(
        "restart to serving (spawn -> /readyz 200 -> a payment succeeded)",
        len(restarts),
        kind="report",
    )
    if serving:
        check.summary = (
            f"serving p50 {_nearest_rank(serving, 50):.2f}s "
            f"max {serving[-1]:.2f}s; ready p50 {_nearest_rank(ready, 50):.2f}s "
            f"max {ready[-1]:.2f}s"
        )
    else:
        check.summary = "no restart"
    return check


def _dead_letters(facts: _Facts) -> Check:
    dead = [d for d in facts.store.deliveries if d.status == "dead"]
    check = Check("dead letters", len(facts.store.deliveries), kind="report")
    by_target = Counter(f"{d.rule}/{d.target_id}" for d in dead)
    check.summary = ", ".join(f"{k} x{v}" for k, v in by_target.most_common()) or "none"
    for d in dead:
        check.breach(
            f"delivery {d.id} of event {d.event_id} to {d.rule}/{d.target_id} after "
            f"{d.attempts} attempts: {d.last_error}"
        )
    return check


def _server_errors(answers: Mapping[str, int]) -> Check:
    errors = {k: v for k, v in answers.items() if k.startswith("5")}
    check = Check(
        "5xx answers (503: the PSP provably did nothing)", sum(answers.values()), kind="report"
    )
    check.summary = ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())) or "none"
    return check


def _keys_released(waits: Sequence[KeyWait]) -> Check:
    check = Check(
        f"no idempotency key held past its lease ({LEASE.total_seconds():g} s)", len(waits)
    )
    ordered = sorted(w.waited_s for w in waits)
    if ordered:
        check.summary = (
            f"{len(ordered)} retries told 409 key in use: answered after p50 "
            f"{_nearest_rank(ordered, 50):.1f}s, max {ordered[-1]:.1f}s"
        )
    for wait in waits:
        if wait.waited_s > KEY_HELD_LIMIT_S:
            check.breach(
                f"{wait.request}: 409 idempotency_key_in_use for {wait.waited_s:.1f}s"
                + ("" if wait.answered else ", then the client gave up")
            )
    return check


def _nearest_rank(ordered: Sequence[float], pct: float) -> float:
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def failed(checks: Iterable[Check]) -> list[Check]:
    return [c for c in checks if c.failed]
