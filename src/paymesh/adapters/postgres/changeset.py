"""One changeset, one transaction: every condition is its statement's own WHERE or ON CONFLICT.

A changeset written by one statement (`one_statement`: a relay's routed mark, a consumer's
single mark...) is that statement's own transaction: BEGIN and COMMIT around it would be two
more round trips (asyncpg sends each on its own) and change nothing.

Under READ COMMITTED a statement that meets a row another transaction is writing waits for
that commit, then re-checks its condition against the committed row; so the row counts below
decide each condition correctly across any number of processes, with no retry loop.

Rows are written in key order within each table, so two changesets that touch the same
rows lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def one_statement(changes: Changeset) -> bool:
    """Whether `apply` writes `changes` with a single statement that cannot half succeed.

    Payments and idempotency records are left to a transaction whatever their count (their
    writers check row counts and may add statements). Several consumer marks are one
    statement, but `_mark_processed` raises after it when only some went in: only a
    transaction undoes the others."""
    if changes.payments or changes.idempotency is not None:
        return False
    parts = (
        changes.events,
        changes.deliveries,
        changes.routed,
        changes.notifications,
        changes.ledger,
    )
    written = sum(1 for part in parts if part)
    if changes.processed:
        return written == 0 and len(changes.processed) == 1
    return written == 1


async def apply(conn: Any, changes: Changeset) -> None:
    """Inside the commit's transaction (or as its one statement, `one_statement`): raise to
    undo the whole changeset."""
    if changes.idempotency is not None:
        await _write_idempotency(conn, changes.idempotency)
    if changes.processed:
        await _mark_processed(conn, sorted(changes.processed))
    refunds: list[tuple[str, str, str]] = []
    for write in sorted(changes.payments, key=lambda w: w.payment.id):
        await _write_payment(conn, write.payment, write.expected_version)
        refunds += [
            (r.id, write.payment.merchant_id, write.payment.id) for r in write.payment.refunds
        ]
    if refunds:
        await conn.execute(
            "INSERT INTO refunds (id, merchant_id, payment_id)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING",
            *_columns(sorted(refunds), 3),
        )
    if changes.events:
        # WITH ORDINALITY ... ORDER BY: seq follows the changeset's order, a payment's timeline.
        await conn.execute(
            "INSERT INTO events (id, merchant_id, payment_id, type, occurred_at, envelope)"
            " SELECT id, merchant_id, payment_id, type, occurred_at, envelope FROM unnest("
            "$1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[])"
            " WITH ORDINALITY AS e(id, merchant_id, payment_id, type, occurred_at, envelope, n)"
            " ORDER BY n",
            *_columns(
                [
                    (e.id, e.merchant_id, e.payment_id, e.type, e.time, encode_json(e.envelope()))
                    for e in changes.events
                ],
                6,
            ),
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
        await conn.execute(
            "INSERT INTO deliveries (event_id, rule, target_id, id, merchant_id, status,"
            " attempts, next_attempt_at, updated_at, doc) SELECT * FROM unnest($1::text[],"
            " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::integer[],"
            " $8::timestamptz[], $9::timestamptz[], $10::bytea[]) ON CONFLICT DO NOTHING",
            *_columns(rows, 10),
        )
    if changes.routed:
        await conn.execute(
            "UPDATE events SET delivered = true WHERE id = ANY($1::text[]) AND NOT delivered",
            changes.routed,
        )
    if changes.notifications:
        await conn.execute(
            "INSERT INTO notifications (id, merchant_id, payment_id, event_id, channel,"
            " recipient, template, created_at) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])",
            *_columns(
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
            ),
        )
    if changes.ledger:
        await _book(conn, changes.ledger)


async def _book(conn: Any, ledger: list[LedgerTransaction]) -> None:
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
    await conn.execute(
        "WITH booked AS (INSERT INTO ledger_transactions (id, merchant_id, payment_id, psp,"
        " kind, created_at, doc) SELECT id, merchant_id, payment_id, psp, kind, created_at,"
        " doc FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::timestamptz[], $7::bytea[]) WITH ORDINALITY"
        " AS t(id, merchant_id, payment_id, psp, kind, created_at, doc, n) ORDER BY n"
        " ON CONFLICT (id) DO NOTHING RETURNING id)"
        " INSERT INTO ledger_postings (txn_id, n, merchant_id, account, currency, amount,"
        " available_on) SELECT * FROM unnest($8::text[], $9::integer[], $10::text[],"
        " $11::text[], $12::text[], $13::bigint[], $14::date[])"
        " AS p(txn_id, n, merchant_id, account, currency, amount, available_on)"
        " WHERE p.txn_id IN (SELECT id FROM booked)",
        *_columns(
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
        ),
        *_columns(postings, 7),
    )


async def _write_idempotency(conn: Any, write: IdempotencyWrite) -> None:
    r = write.record
    values = (
        r.fingerprint,
        r.resource_id,
        r.lease_token,
        r.locked_until,
        r.expires_at,
        r.completed,
        r.response_status,
        r.response_body,
    )
    if write.expected_token is None:
        # The claim: one statement that inserts, or takes over only an expired record. A
        # concurrent claim of the same key waits for this one's commit, then finds it fresh.
        status = await conn.execute(
            "INSERT INTO idempotency (fingerprint, resource_id, lease_token, locked_until,"
            " expires_at, completed, response_status, response_body, merchant_id, key)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (merchant_id, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
            " resource_id = excluded.resource_id, lease_token = excluded.lease_token,"
            " locked_until = excluded.locked_until, expires_at = excluded.expires_at,"
            " completed = excluded.completed, response_status = excluded.response_status,"
            " response_body = excluded.response_body WHERE idempotency.expires_at <= $11",
            *values,
            r.merchant_id,
            r.key,
            write.now,
        )
    else:
        status = await conn.execute(
            "UPDATE idempotency SET fingerprint = $1, resource_id = $2, lease_token = $3,"
            " locked_until = $4, expires_at = $5, completed = $6, response_status = $7,"
            " response_body = $8 WHERE merchant_id = $9 AND key = $10 AND lease_token = $11",
            *values,
            r.merchant_id,
            r.key,
            write.expected_token,
        )
    if rowcount(status) != 1:
        raise IdempotencyConflict(f"idempotency key {r.key!r} is held by another request")


async def _mark_processed(conn: Any, marks: list[tuple[str, str]]) -> None:
    # processed_at is the column's default, the database's now(): see migration 0003.
    rows = await conn.fetch(
        "INSERT INTO processed (consumer, event_id) SELECT * FROM unnest($1::text[], $2::text[])"
        " ON CONFLICT DO NOTHING RETURNING consumer, event_id",
        *_columns(marks, 2),
    )
    if len(rows) != len(marks):
        fresh = {(row[0], row[1]) for row in rows}
        consumer, event_id = next((m for m in marks if m not in fresh), marks[0])
        raise AlreadyProcessed(f"{consumer} already applied {event_id}")


async def _write_payment(conn: Any, p: Payment, expected_version: int) -> None:
    values = (
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
    if expected_version == 0:
        status = await conn.execute(
            "INSERT INTO payments (id, merchant_id, customer_id, status, connector,"
            " connector_payment_id, review_status, refund_pending_at, created_at, updated_at,"
            " version, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (id) DO NOTHING",
            p.id,
            *values,
        )
        if rowcount(status) != 1:
            raise VersionConflict(f"payment {p.id} already exists")
        return
    status = await conn.execute(
        "UPDATE payments SET merchant_id = $2, customer_id = $3, status = $4, connector = $5,"
        " connector_payment_id = $6, review_status = $7, refund_pending_at = $8,"
        " created_at = $9, updated_at = $10, version = $11, doc = $12"
        " WHERE id = $1 AND version = $13",
        p.id,
        *values,
        expected_version,
    )
    if rowcount(status) != 1:
        raise VersionConflict(f"payment {p.id} changed since version {expected_version}")
