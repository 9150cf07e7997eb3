"""One changeset, one statement: every condition is its own CTE's WHERE or ON CONFLICT.

A changeset is written by a single statement, one CTE per table it touches, and a statement
is its own transaction: no BEGIN and COMMIT round trips (asyncpg sends each on its own),
and no round trip per table. A create was five round trips (BEGIN, the idempotency claim,
the payment, its event, COMMIT), a PSP answer six, a confirmation four: each is one now.
The conditions (the payment still at the version it was read at, the idempotency key still
held, the consumer mark not there yet) are counted from their CTEs' RETURNING rows by the
statement's own SELECT, which calls `paymesh_refuse_unless` (migration 0007): when one
fails it raises, and the whole statement is undone; `apply` turns its refusal back into the
port's exception.

Under READ COMMITTED a statement that meets a row another transaction is writing waits for
that commit, then re-checks its condition against the committed row (each CTE alike); so
the row counts below decide each condition correctly across any number of processes, with
no retry loop.

Rows are written in key order within each table. The conditioned tables are written in one
order, idempotency, consumer marks, payments: the statement's SELECT reads their CTEs in
it, and PostgreSQL runs a data-modifying CTE when it is first read (the others, whose rows
are new or are met only by changesets of the same shape, run after it). So two changesets
that touch the same rows lock them in the same order and do not deadlock each other. That
order is how PostgreSQL executes such a statement, not a documented promise: were it to
change, PostgreSQL would detect a deadlock and fail one of the two statements, whose caller
sees a failed commit (nothing written), as on any database error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from paymesh.adapters.codec import delivery_to_doc, encode_json, payment_to_doc
from paymesh.adapters.ledger_codec import ledger_to_doc
from paymesh.domain.ledger import LedgerTransaction
from paymesh.domain.payment import Payment
from paymesh.ports.store import (
    AlreadyProcessed,
    Changeset,
    IdempotencyConflict,
    IdempotencyWrite,
    VersionConflict,
)


def rowcount(status: str) -> int:
    """asyncpg's command tag ("UPDATE 1", "INSERT 0 1") -> rows affected."""
    return int(status.rsplit(" ", 1)[1])


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows -> one list per column: the arrays an `unnest` insert takes."""
    return [[row[i] for row in rows] for i in range(width)]


class _Statement:
    """A changeset's statement as it is built: CTEs, their arguments, and the conditions."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.args: list[Any] = []
        self.checks: list[str] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def args_of(self, values: Sequence[Any]) -> list[str]:
        return [self.arg(v) for v in values]

    def write(self, sql: str) -> str:
        """Add a write, a data-modifying CTE; returns its name."""
        self.writes.append(sql)
        return f"w{len(self.writes) - 1}"

    def require(self, cte: str, rows: int, refusal: str) -> None:
        """The statement is refused, with `refusal` ("<kind>:<why>"), unless `cte` returned
        exactly `rows` rows."""
        self.checks.append(
            f"paymesh_refuse_unless((SELECT count(*) FROM {cte}) = {self.arg(rows)}::bigint,"
            f" {self.arg(refusal)}::text)"
        )

    def sql(self) -> str:
        if len(self.writes) == 1 and not self.checks:  # one unconditioned write: as it is
            return self.writes[0]
        ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(self.writes))
        return f"WITH {ctes} SELECT {', '.join(self.checks) or '1'}"


_REFUSALS: dict[str, type[Exception]] = {
    "version": VersionConflict,
    "idempotency": IdempotencyConflict,
    "processed": AlreadyProcessed,
}


def statement(
    changes: Changeset,
    relay_lease_until: datetime | None = None,
    envelopes: Sequence[dict[str, Any]] | None = None,
) -> tuple[str, list[Any]] | None:
    """The one statement that writes `changes` and its arguments; None when it writes
    nothing. The text depends only on which parts the changeset has (and how many payments):
    asyncpg prepares each shape once per connection. `relay_lease_until`: the events go in
    already leased to this process's relay until then (`PostgresStore.hand_outbox_to`).
    `envelopes`: the events' own, when the caller has made them already."""
    s = _Statement()
    if changes.idempotency is not None:
        _write_idempotency(s, changes.idempotency)
    if changes.processed:
        _mark_processed(s, sorted(changes.processed))
    refunds: list[tuple[str, str, str]] = []
    for write in sorted(changes.payments, key=lambda w: w.payment.id):
        _write_payment(s, write.payment, write.expected_version)
        refunds += [
            (r.id, write.payment.merchant_id, write.payment.id) for r in write.payment.refunds
        ]
    if refunds:
        a = s.args_of(_columns(sorted(refunds), 3))
        s.write(
            "INSERT INTO refunds (id, merchant_id, payment_id)"
            f" SELECT * FROM unnest({a[0]}::text[], {a[1]}::text[], {a[2]}::text[])"
            " ON CONFLICT DO NOTHING"
        )
    if changes.events:
        # WITH ORDINALITY ... ORDER BY: seq follows the changeset's order, a payment's timeline.
        a = s.args_of(
            _columns(
                [
                    (e.id, e.merchant_id, e.payment_id, e.type, e.time, encode_json(envelope))
                    for e, envelope in zip(
                        changes.events,
                        envelopes or [e.envelope() for e in changes.events],
                        strict=True,
                    )
                ],
                6,
            )
        )
        leased = (
            ("", "")
            if relay_lease_until is None
            else (
                ", relay_lease_until",
                f", {s.arg(relay_lease_until)}::timestamptz",
            )
        )
        s.write(
            "INSERT INTO events (id, merchant_id, payment_id, type, occurred_at, envelope"
            f"{leased[0]}) SELECT id, merchant_id, payment_id, type, occurred_at, envelope"
            f"{leased[1]} FROM unnest("
            f"{a[0]}::text[], {a[1]}::text[], {a[2]}::text[], {a[3]}::text[],"
            f" {a[4]}::timestamptz[], {a[5]}::bytea[])"
            " WITH ORDINALITY AS e(id, merchant_id, payment_id, type, occurred_at, envelope, n)"
            " ORDER BY n"
        )
    if changes.deliveries:
        rows = sorted(
            (
                d.event_id,
                d.rule,
                d.target.id,
                d.id,
                d.merchant_id,
                d.status,
                d.attempts,
                d.next_attempt_at,
                d.created_at,
                delivery_to_doc(d),
            )
            for d in changes.deliveries
        )
        a = s.args_of(_columns(rows, 10))
        s.write(
            "INSERT INTO deliveries (event_id, rule, target_id, id, merchant_id, status,"
            f" attempts, next_attempt_at, updated_at, doc) SELECT * FROM unnest({a[0]}::text[],"
            f" {a[1]}::text[], {a[2]}::text[], {a[3]}::text[], {a[4]}::text[], {a[5]}::text[],"
            f" {a[6]}::integer[], {a[7]}::timestamptz[], {a[8]}::timestamptz[], {a[9]}::bytea[])"
            " ON CONFLICT DO NOTHING"
        )
    if changes.routed:
        s.write(
            "UPDATE events SET delivered = true"
            f" WHERE id = ANY({s.arg(changes.routed)}::text[]) AND NOT delivered"
        )
    if changes.notifications:
        a = s.args_of(
            _columns(
                [
                    (
                        n.id,
                        n.merchant_id,
                        n.payment_id,
                        n.event_id,
                        n.channel,
                        n.recipient,
                        n.template,
                        n.created_at,
                    )
                    for n in changes.notifications
                ],
                8,
            )
        )
        s.write(
            "INSERT INTO notifications (id, merchant_id, payment_id, event_id, channel,"
            f" recipient, template, created_at) SELECT * FROM unnest({a[0]}::text[],"
            f" {a[1]}::text[], {a[2]}::text[], {a[3]}::text[], {a[4]}::text[], {a[5]}::text[],"
            f" {a[6]}::text[], {a[7]}::timestamptz[])"
        )
    if changes.ledger:
        _book(s, changes.ledger)
    return (s.sql(), s.args) if s.writes else None


async def apply(
    conn: Any,
    changes: Changeset,
    relay_lease_until: datetime | None = None,
    envelopes: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Write `changes` with its one statement (see `statement` for the optional arguments);
    raise the port's exception if a condition failed, in which case nothing was written."""
    built = statement(changes, relay_lease_until, envelopes)
    if built is None:
        return
    sql, args = built
    try:
        await conn.execute(sql, *args)
    except asyncpg.RaiseError as exc:
        kind, _, why = str(exc.args[0] if exc.args else exc).partition(":")
        refused = _REFUSALS.get(kind)
        if refused is None:
            raise
        raise refused(why) from None


def _book(s: _Statement, ledger: list[LedgerTransaction]) -> None:
    """Each transaction once, in booking order (`seq`, as events), with its postings.

    A transaction's id derives from the event that booked it, so a replayed booking meets
    its own row: `ON CONFLICT DO NOTHING` inserts nothing, and the postings go in only for
    the rows this statement inserted (`booked`), never a second time. A concurrent commit
    of the same transaction waits on the unique id and then finds it there. Rows go in
    booking order, not key order (module doc): two changesets meet on the same ids only
    when one replays the other's booking, which lists them in the same order."""
    once: dict[str, LedgerTransaction] = {}
    for t in ledger:
        once.setdefault(t.id, t)
    txns = list(once.values())
    postings = [
        (t.id, n, t.merchant_id, p.account.value, t.currency, p.amount, t.available_on)
        for t in txns
        for n, p in enumerate(t.postings)
    ]
    ta = s.args_of(
        _columns(
            [
                (
                    t.id,
                    t.merchant_id,
                    t.payment_id,
                    t.psp,
                    t.kind.value,
                    t.created_at,
                    ledger_to_doc(t),
                )
                for t in txns
            ],
            7,
        )
    )
    booked = s.write(
        "INSERT INTO ledger_transactions (id, merchant_id, payment_id, psp,"
        " kind, created_at, doc) SELECT id, merchant_id, payment_id, psp, kind, created_at,"
        f" doc FROM unnest({ta[0]}::text[], {ta[1]}::text[], {ta[2]}::text[], {ta[3]}::text[],"
        f" {ta[4]}::text[], {ta[5]}::timestamptz[], {ta[6]}::bytea[]) WITH ORDINALITY"
        " AS t(id, merchant_id, payment_id, psp, kind, created_at, doc, n) ORDER BY n"
        " ON CONFLICT (id) DO NOTHING RETURNING id"
    )
    p = s.args_of(_columns(postings, 7))
    s.write(
        "INSERT INTO ledger_postings (txn_id, n, merchant_id, account, currency, amount,"
        f" available_on) SELECT * FROM unnest({p[0]}::text[], {p[1]}::integer[],"
        f" {p[2]}::text[], {p[3]}::text[], {p[4]}::text[], {p[5]}::bigint[], {p[6]}::date[])"
        " AS p(txn_id, n, merchant_id, account, currency, amount, available_on)"
        f" WHERE p.txn_id IN (SELECT id FROM {booked})"
    )


def _write_idempotency(s: _Statement, write: IdempotencyWrite) -> None:
    r = write.record
    v = s.args_of(
        (
            r.fingerprint,
            r.resource_id,
            r.lease_token,
            r.locked_until,
            r.expires_at,
            r.completed,
            r.response_status,
            r.response_body,
            r.merchant_id,
            r.key,
        )
    )
    if write.expected_token is None:
        # The claim: one statement that inserts, or takes over only an expired record. A
        # concurrent claim of the same key waits for this one's commit, then finds it fresh.
        cte = s.write(
            "INSERT INTO idempotency (fingerprint, resource_id, lease_token, locked_until,"
            " expires_at, completed, response_status, response_body, merchant_id, key)"
            f" VALUES ({', '.join(v)})"
            " ON CONFLICT (merchant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " resource_id = excluded.resource_id, lease_token = excluded.lease_token,"
            " locked_until = excluded.locked_until, expires_at = excluded.expires_at,"
            " completed = excluded.completed, response_status = excluded.response_status,"
            " response_body = excluded.response_body"
            f" WHERE idempotency.expires_at <= {s.arg(write.now)} RETURNING 1"
        )
    else:
        cte = s.write(
            f"UPDATE idempotency SET fingerprint = {v[0]}, resource_id = {v[1]},"
            f" lease_token = {v[2]}, locked_until = {v[3]}, expires_at = {v[4]},"
            f" completed = {v[5]}, response_status = {v[6]}, response_body = {v[7]}"
            f" WHERE merchant_id = {v[8]} AND key = {v[9]}"
            f" AND lease_token = {s.arg(write.expected_token)} RETURNING 1"
        )
    s.require(cte, 1, f"idempotency:idempotency key {r.key!r} is held by another request")


def _mark_processed(s: _Statement, marks: list[tuple[str, str]]) -> None:
    # processed_at is the column's default, the database's now(): see migration 0003.
    a = s.args_of(_columns(marks, 2))
    cte = s.write(
        f"INSERT INTO processed (consumer, event_id) SELECT * FROM unnest({a[0]}::text[],"
        f" {a[1]}::text[]) ON CONFLICT DO NOTHING RETURNING 1"
    )
    consumer, event_id = marks[0]
    already = (
        f"{consumer} already applied {event_id}"
        if len(marks) == 1
        else f"one of {len(marks)} marks ({consumer} {event_id}, ...) was already applied"
    )
    s.require(cte, len(marks), f"processed:{already}")


def _write_payment(s: _Statement, p: Payment, expected_version: int) -> None:
    v = s.args_of(
        (
            p.id,
            p.merchant_id,
            p.customer_id,
            p.status.value,
            p.connector,
            p.connector_payment_id,
            None if p.review is None else p.review.status.value,
            p.oldest_pending_refund,
            p.created_at,
            p.updated_at,
            expected_version + 1,
            payment_to_doc(p),
        )
    )
    if expected_version == 0:
        cte = s.write(
            "INSERT INTO payments (id, merchant_id, customer_id, status, connector,"
            " connector_payment_id, review_status, refund_pending_at, created_at, updated_at,"
            f" version, doc) VALUES ({', '.join(v)}) ON CONFLICT (id) DO NOTHING RETURNING 1"
        )
        s.require(cte, 1, f"version:payment {p.id} already exists")
        return
    cte = s.write(
        f"UPDATE payments SET merchant_id = {v[1]}, customer_id = {v[2]}, status = {v[3]},"
        f" connector = {v[4]}, connector_payment_id = {v[5]}, review_status = {v[6]},"
        f" refund_pending_at = {v[7]}, created_at = {v[8]}, updated_at = {v[9]},"
        f" version = {v[10]}, doc = {v[11]}"
        f" WHERE id = {v[0]} AND version = {s.arg(expected_version)} RETURNING 1"
    )
    s.require(cte, 1, f"version:payment {p.id} changed since version {expected_version}")
