"""The Store port's contract, one class per protocol of `paymesh.ports.store`.

A backend proves itself by subclassing `StoreContract` (all of them) once and providing a
`store` fixture (opened, empty); SQLite, PostgreSQL and the in-memory store run this file
unchanged. The classes test one protocol each, but a store under test is a whole `Store`:
most write through `commit`, the only way in.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from paymesh.domain.errors import DomainError
from paymesh.domain.events import DomainEvent
from paymesh.domain.ledger import LedgerTransaction, Move, fee_adjustment, schedule
from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome, Routing
from paymesh.domain.review import ReviewStatus
from paymesh.domain.status import UNSETTLED, PaymentStatus
from paymesh.ports.store import (
    AlreadyProcessed,
    ApiKey,
    BlobPart,
    Changeset,
    IdempotencyConflict,
    IdempotencyRecord,
    IdempotencyWrite,
    Notification,
    PaymentQuery,
    Store,
    VersionConflict,
)

S = PaymentStatus
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALLOW = FraudAssessment(score=3, factors=("new_customer",), decision="allow")


def payment(
    pid: str, merchant: str = "m1", customer: str = "c1", at: datetime = T0, amount: int = 2000
) -> Payment:
    return Payment.initiate(
        now=at,
        fraud=ALLOW,
        id=pid,
        merchant_id=merchant,
        amount=amount,
        currency="usd",
        customer_id=customer,
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
        metadata={"order_id": "o-1"},
    )


def claim(
    key: str = "k1",
    token: str = "t1",
    now: datetime = T0,
    resource: str = "pay_1",
    fingerprint: str = "fp",
) -> IdempotencyWrite:
    record = IdempotencyRecord(
        merchant_id="m1",
        key=key,
        fingerprint=fingerprint,
        resource_id=resource,
        lease_token=token,
        locked_until=now + timedelta(seconds=60),
        expires_at=now + timedelta(hours=24),
    )
    return IdempotencyWrite(record, now)


async def save(store: Store, *payments: Payment) -> None:
    changes = Changeset()
    for p in payments:
        changes.save(p)
    await store.commit(changes)
    changes.committed()


class UnitOfWorkContract:
    """`commit`: every write of a changeset or none, each under its own condition."""

    async def test_a_stale_version_is_refused_and_writes_nothing(self, store: Store) -> None:
        await save(store, payment("pay_1"))
        first = await store.get_payment("pay_1")
        second = await store.get_payment("pay_1")
        assert first is not None and second is not None
        first.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
        await save(store, first)
        second.apply_psp_outcome(PspOutcome(S.PROCESSING, "pi_1"), T0)
        changes = Changeset()
        changes.save(second)
        with pytest.raises(VersionConflict):
            await store.commit(changes)
        stored = await store.get_payment("pay_1")
        assert stored is not None and stored.status == S.SUCCEEDED
        events = await store.events_for_payment("m1", "pay_1")
        assert [e.type for e in events] == ["payment.initiated", "payment.succeeded"]

    async def test_the_same_new_payment_twice_conflicts(self, store: Store) -> None:
        await save(store, payment("pay_1"))
        with pytest.raises(VersionConflict):
            await save(store, payment("pay_1"))

    async def test_a_second_write_of_one_payment_must_expect_the_firsts_version(
        self, store: Store
    ) -> None:
        p = payment("pay_1")
        changes = Changeset()
        changes.save(p)
        changes.save(p)  # both written as new: the second finds the first's version 1
        with pytest.raises(VersionConflict):
            await store.commit(changes)
        assert await store.get_payment("pay_1") is None
        assert await store.events_for_payment("m1", "pay_1") == []

    async def test_claim_and_payment_are_one_write(self, store: Store) -> None:
        await store.commit(Changeset(idempotency=claim(token="a")))
        changes = Changeset(idempotency=claim(token="b", resource="pay_2"))
        changes.save(payment("pay_2"))
        with pytest.raises(IdempotencyConflict):
            await store.commit(changes)
        assert await store.get_payment("pay_2") is None
        assert await store.events_for_payment("m1", "pay_2") == []

    async def test_a_consumer_applies_an_event_once(self, store: Store) -> None:
        await store.commit(Changeset(processed=[("send_confirmation", "e1")]))
        n = Notification("ntf_1", "m1", "pay_1", "e1", "email", "c1", "t", T0)
        with pytest.raises(AlreadyProcessed):
            await store.commit(
                Changeset(processed=[("send_confirmation", "e1")], notifications=[n])
            )
        assert await store.notifications_for_payment("m1", "pay_1") == []
        await store.commit(Changeset(processed=[("other_consumer", "e1")], notifications=[n]))
        assert [x.id for x in await store.notifications_for_payment("m1", "pay_1")] == ["ntf_1"]

    async def test_event_ids_are_unique(self, store: Store) -> None:
        event = DomainEvent("payment.initiated", "pay_1", "m1", T0, {})
        await store.commit(Changeset(events=[event]))
        with pytest.raises(Exception):  # noqa: B017 - any backend's uniqueness error
            await store.commit(Changeset(events=[event]))


class PaymentStoreContract:
    """Payments read back whole, per merchant, and the queries the API and the jobs run."""

    async def test_a_committed_payment_reads_back_whole(self, store: Store) -> None:
        p = payment("pay_1")
        p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
        p.start_refund("re_1", 500, "requested_by_customer", T0)
        await save(store, p)
        got = await store.get_payment("pay_1", "m1")
        assert got is not None
        assert (got.status, got.amount, got.amount_captured, got.connector_payment_id) == (
            S.SUCCEEDED,
            2000,
            2000,
            "pi_1",
        )
        assert got.fraud == ALLOW
        assert got.metadata == {"order_id": "o-1"}
        assert [(r.id, r.amount, r.status) for r in got.refunds] == [("re_1", 500, "pending")]
        assert got.created_at == T0
        assert got.version == 1
        assert got.events == []

    async def test_another_merchant_cannot_read_it(self, store: Store) -> None:
        await save(store, payment("pay_1", merchant="m1"))
        assert await store.get_payment("pay_1", "m2") is None
        assert await store.get_payment("pay_1") is not None

    async def test_what_a_caller_holds_is_its_own_copy(self, store: Store) -> None:
        p = payment("pay_1")
        await save(store, p)
        p.metadata["order_id"] = "edited after the write"
        got = await store.get_payment("pay_1")
        assert got is not None
        got.amount, got.status = 1, S.FAILED
        got.metadata["order_id"] = "edited after the read"
        [listed], _ = await store.list_payments(PaymentQuery(merchant_id="m1"))
        listed.metadata["order_id"] = "edited in a page"
        again = await store.get_payment("pay_1")
        assert again is not None
        assert (again.amount, again.status, again.metadata) == (
            2000,
            S.PENDING,
            {"order_id": "o-1"},
        )

    async def test_find_by_connector_reference(self, store: Store) -> None:
        p = payment("pay_1")
        p.apply_psp_outcome(PspOutcome(S.PROCESSING, "pi_77"), T0)
        await save(store, p)
        found = await store.find_payment_by_connector_ref("stripe", "pi_77")
        assert found is not None and found.id == "pay_1"
        assert await store.find_payment_by_connector_ref("adyen", "pi_77") is None

    async def test_a_payment_is_found_by_the_reference_it_has_now(self, store: Store) -> None:
        # Bound after it was saved, then moved to another PSP by a failover: each save an
        # update, and a webhook finds the payment by its current PSP's reference alone.
        p = payment("pay_1", customer="c7")
        p.routing = Routing("cards", ["adyen"])
        await save(store, p)
        p.apply_psp_outcome(PspOutcome(S.PENDING, "pi_77"), T0)
        await save(store, p)
        found = await store.find_payment_by_connector_ref("stripe", "pi_77")
        assert found is not None and (found.id, found.connector) == ("pay_1", "stripe")
        assert p.fail_over("stripe refused", T0)
        await save(store, p)
        assert await store.find_payment_by_connector_ref("stripe", "pi_77") is None
        p.apply_psp_outcome(PspOutcome(S.PROCESSING, "psp_88"), T0)
        await save(store, p)
        found = await store.find_payment_by_connector_ref("adyen", "psp_88")
        assert found is not None and (found.id, found.status) == ("pay_1", S.PROCESSING)
        assert await store.find_payment_by_connector_ref("stripe", "pi_77") is None
        # The columns the update leaves alone still list it.
        page, _ = await store.list_payments(PaymentQuery(merchant_id="m1", customer_id="c7"))
        assert [q.id for q in page] == ["pay_1"]
        page, _ = await store.list_payments(PaymentQuery(merchant_id="m1", status=S.PROCESSING))
        assert [q.id for q in page] == ["pay_1"]

    async def test_refund_lookup_is_per_merchant(self, store: Store) -> None:
        p = payment("pay_1")
        p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
        p.start_refund("re_9", 700, None, T0)
        await save(store, p)
        refund = await store.get_refund("re_9", "m1")
        assert refund is not None and (refund.amount, refund.payment_id) == (700, "pay_1")
        assert await store.get_refund("re_9", "m2") is None

    async def test_list_is_newest_first_with_cursor_and_filters(self, store: Store) -> None:
        ps = [
            payment(f"pay_{i:02d}", customer="c1" if i % 2 else "c2", at=T0 + timedelta(seconds=i))
            for i in range(7)
        ]
        ps.append(payment("pay_other", merchant="m2", at=T0 + timedelta(seconds=99)))
        await save(store, *ps)
        page, more = await store.list_payments(PaymentQuery(merchant_id="m1", limit=3))
        assert [p.id for p in page] == ["pay_06", "pay_05", "pay_04"] and more
        page, more = await store.list_payments(
            PaymentQuery(merchant_id="m1", limit=3, starting_after="pay_04")
        )
        assert [p.id for p in page] == ["pay_03", "pay_02", "pay_01"] and more
        page, more = await store.list_payments(
            PaymentQuery(merchant_id="m1", limit=3, starting_after="pay_01")
        )
        assert [p.id for p in page] == ["pay_00"] and not more
        page, _ = await store.list_payments(
            PaymentQuery(merchant_id="m1", customer_id="c2", limit=10)
        )
        assert [p.id for p in page] == ["pay_06", "pay_04", "pay_02", "pay_00"]
        page, _ = await store.list_payments(
            PaymentQuery(
                merchant_id="m1",
                created_gte=T0 + timedelta(seconds=2),
                created_lt=T0 + timedelta(seconds=4),
                limit=10,
            )
        )
        assert [p.id for p in page] == ["pay_03", "pay_02"]

    async def test_list_by_status(self, store: Store) -> None:
        a, b = payment("pay_a"), payment("pay_b", at=T0 + timedelta(seconds=1))
        a.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_a", amount_received=2000), T0)
        await save(store, a, b)
        page, _ = await store.list_payments(PaymentQuery(merchant_id="m1", status=S.PENDING))
        assert [p.id for p in page] == ["pay_b"]

    async def test_the_review_queue_lists_by_review_status(self, store: Store) -> None:
        held, closed, plain = (
            payment("pay_h"),
            payment("pay_c", at=T0 + timedelta(seconds=1)),
            payment("pay_p", at=T0 + timedelta(seconds=2)),
        )
        for p in (held, closed, plain):
            p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, f"pi_{p.id}"), T0)
        held.open_review(T0, "rule r")
        closed.open_review(T0, "rule r")
        closed.close_review(ReviewStatus.REJECTED, T0)
        await save(store, held, closed, plain)
        open_ = await store.list_payments(
            PaymentQuery(merchant_id="m1", under_review=True, review_status=ReviewStatus.OPEN)
        )
        assert [p.id for p in open_[0]] == ["pay_h"]
        assert open_[0][0].review is not None and open_[0][0].review.reason == "rule r"
        every, _ = await store.list_payments(PaymentQuery(merchant_id="m1", under_review=True))
        assert [p.id for p in every] == ["pay_c", "pay_h"]
        stored = await store.get_payment("pay_c")
        assert stored is not None and stored.review is not None
        assert stored.review.status == ReviewStatus.REJECTED and stored.review.closed_at == T0

    async def test_payments_with_refunds_left_pending_are_found_for_recovery(
        self, store: Store
    ) -> None:
        waiting, settled, none = payment("pay_w"), payment("pay_s"), payment("pay_n")
        for p in (waiting, settled, none):
            p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, f"pi_{p.id}", amount_received=2000), T0)
        waiting.start_refund("re_w", 500, None, T0)
        settled.start_refund("re_s", 500, None, T0)
        settled.settle_refund("re_s", True, T0)
        await save(store, waiting, settled, none)
        found = await store.payments_with_pending_refunds(T0 + timedelta(seconds=1), 10)
        assert [p.id for p in found] == ["pay_w"]
        assert await store.payments_with_pending_refunds(T0, 10) == []  # not old enough
        stored = await store.get_payment("pay_w")
        assert stored is not None
        stored.settle_refund("re_w", True, T0)
        await save(store, stored)
        assert await store.payments_with_pending_refunds(T0 + timedelta(seconds=1), 10) == []

    async def test_payments_to_sync_are_unsettled_and_old_enough(self, store: Store) -> None:
        old, fresh, done = (
            payment("pay_old"),
            payment("pay_new", at=T0 + timedelta(hours=1)),
            payment("pay_done"),
        )
        done.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi", amount_received=2000), T0)
        await save(store, old, fresh, done)
        stale = await store.payments_to_sync(UNSETTLED, T0 + timedelta(minutes=1), 10)
        assert [p.id for p in stale] == ["pay_old"]


class IdempotencyStoreContract:
    """Idempotency claims and leases, and the purge of what has expired (records, and the
    consumer marks `purge_expired` also ages out)."""

    async def test_a_key_is_claimed_once(self, store: Store) -> None:
        await store.commit(Changeset(idempotency=claim(token="a")))
        with pytest.raises(IdempotencyConflict):
            await store.commit(Changeset(idempotency=claim(token="b")))
        got = await store.get_idempotency("m1", "k1")
        assert got is not None and got.lease_token == "a" and not got.completed

    async def test_fifty_concurrent_claims_have_one_winner(self, store: Store) -> None:
        results = await asyncio.gather(
            *(store.commit(Changeset(idempotency=claim(token=f"t{i}"))) for i in range(50)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, IdempotencyConflict) for r in results if r is not None)

    async def test_completion_needs_the_lease_token(self, store: Store) -> None:
        write = claim(token="a")
        await store.commit(Changeset(idempotency=write))
        done = replace(write.record, completed=True, response_status=201, response_body=b"{}")
        with pytest.raises(IdempotencyConflict):
            await store.commit(Changeset(idempotency=IdempotencyWrite(done, T0, "wrong")))
        await store.commit(Changeset(idempotency=IdempotencyWrite(done, T0, "a")))
        got = await store.get_idempotency("m1", "k1")
        assert got is not None
        assert (got.completed, got.response_status, got.response_body) == (True, 201, b"{}")

    async def test_released_claims_are_taken_over_at_once(self, store: Store) -> None:
        await store.commit(Changeset(idempotency=claim("k1", "t1")))
        done = claim("k2", "t2")
        await store.commit(Changeset(idempotency=done))
        finished = replace(done.record, completed=True, response_status=201, response_body=b"{}")
        await store.commit(
            Changeset(idempotency=IdempotencyWrite(finished, T0, expected_token="t2"))
        )
        assert await store.release_claims() == 1  # the finished one has no lease to end
        record = await store.get_idempotency("m1", "k1")
        assert record is not None
        assert record.locked_until <= T0 and not record.completed
        taken = replace(record, lease_token="t9", locked_until=T0 + timedelta(seconds=60))
        await store.commit(Changeset(idempotency=IdempotencyWrite(taken, T0, expected_token="t1")))
        record = await store.get_idempotency("m1", "k1")
        assert record is not None and record.lease_token == "t9"

    async def test_a_record_changes_only_through_a_commit(self, store: Store) -> None:
        write = claim(token="a")
        await store.commit(Changeset(idempotency=write))
        write.record.lease_token = "edited after the write"
        got = await store.get_idempotency("m1", "k1")
        assert got is not None
        got.lease_token, got.completed = "edited after the read", True
        again = await store.get_idempotency("m1", "k1")
        assert again is not None
        assert (again.lease_token, again.completed) == ("a", False)

    async def test_an_expired_key_can_be_claimed_again(self, store: Store) -> None:
        await store.commit(Changeset(idempotency=claim(token="a")))
        later = T0 + timedelta(hours=25)
        await store.commit(Changeset(idempotency=claim(token="b", now=later, fingerprint="x")))
        got = await store.get_idempotency("m1", "k1")
        assert got is not None
        assert (got.lease_token, got.fingerprint) == ("b", "x")

    async def test_keys_are_scoped_per_merchant(self, store: Store) -> None:
        await store.commit(Changeset(idempotency=claim()))
        assert await store.get_idempotency("m2", "k1") is None

    async def test_purge_deletes_expired_idempotency_records_but_no_live_lease(
        self, store: Store
    ) -> None:
        def record(
            key: str, claimed: datetime, completed: bool, leased_until: datetime | None = None
        ) -> IdempotencyWrite:
            write = claim(key, f"t-{key}", now=claimed)
            r = replace(
                write.record,
                completed=completed,
                locked_until=leased_until or write.record.locked_until,
            )
            return IdempotencyWrite(r, claimed)

        now = T0 + timedelta(hours=25)
        for write in (
            record("done_old", T0, True),  # expired at T0 + 24 h
            record("cut_old", T0, False),  # expired, its lease long over
            record("done_new", T0 + timedelta(hours=2), True),  # not expired
            record("live_new", now - timedelta(seconds=5), False),  # in flight
            # expired, yet leased past now: a request may still be completing it
            record("leased_old", T0, False, leased_until=now + timedelta(minutes=1)),
        ):
            await store.commit(Changeset(idempotency=write))
        purged = await store.purge_expired(now, now - timedelta(days=45))
        assert (purged.idempotency, purged.processed) == (2, 0)
        for gone in ("done_old", "cut_old"):
            assert await store.get_idempotency("m1", gone) is None
        for kept in ("done_new", "live_new", "leased_old"):
            assert await store.get_idempotency("m1", kept) is not None
        assert (await store.purge_expired(now, now - timedelta(days=45))).idempotency == 0

    async def test_purge_works_in_batches_of_at_most_limit(self, store: Store) -> None:
        for i in range(5):
            await store.commit(Changeset(idempotency=claim(f"k{i}", f"t{i}")))
        await store.commit(Changeset(processed=[("c", f"e{i}") for i in range(3)]))
        later = T0 + timedelta(hours=25)
        soon = datetime.now(UTC) + timedelta(minutes=1)
        counts = [await store.purge_expired(later, soon, limit=2) for _ in range(4)]
        assert [(c.idempotency, c.processed) for c in counts] == [(2, 2), (2, 1), (1, 0), (0, 0)]

    async def test_purge_deletes_consumer_marks_written_before_the_cutoff_only(
        self, store: Store
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        await store.commit(
            Changeset(processed=[("webhook:stripe", "evt_1"), ("send_confirmation", "e1")])
        )
        after = datetime.now(UTC) + timedelta(seconds=1)
        # Marks written after the cutoff stay, and still refuse a second application.
        assert (await store.purge_expired(T0, before)).processed == 0
        with pytest.raises(AlreadyProcessed):
            await store.commit(Changeset(processed=[("webhook:stripe", "evt_1")]))
        purged = await store.purge_expired(T0, after)
        assert (purged.idempotency, purged.processed) == (0, 2)
        # Gone: the same event would now be applied again.
        await store.commit(Changeset(processed=[("webhook:stripe", "evt_1")]))


def _outbox_events(n: int) -> Changeset:
    return Changeset(
        events=[
            DomainEvent("payment.succeeded", "pay_1", "m1", T0, {}, id=f"e{i}") for i in range(n)
        ]
    )


class EventLogContract:
    """The outbox and the event log: committed events, per merchant, in commit order."""

    #: Whether several relays share this backend's outbox, so a claim must lease its rows
    #: (PostgreSQL). The others are relayed by one process and may claim by plain reading.
    shared_outbox = False

    async def test_a_claim_takes_the_outbox_oldest_first_never_a_routed_event(
        self, store: Store
    ) -> None:
        await store.commit(_outbox_events(4))
        await store.commit(Changeset(routed=["e1"]))
        claimed = await store.claim_outbox(T0, 30, 10)
        assert [e.id for e in claimed] == ["e0", "e2", "e3"]
        assert claimed[0].envelope["detail-type"] == "payment.succeeded"
        await store.commit(Changeset(routed=["e0", "e2"]))
        # Routed while leased or not, an event is never claimed again.
        assert [e.id for e in await store.claim_outbox(T0 + timedelta(hours=1), 30, 10)] == ["e3"]

    async def test_a_claim_after_the_lease_ends_takes_the_events_again(self, store: Store) -> None:
        await store.commit(_outbox_events(2))
        assert len(await store.claim_outbox(T0, 30, 10)) == 2
        if self.shared_outbox:  # the relay holding them may still publish them
            assert await store.claim_outbox(T0 + timedelta(seconds=29), 30, 10) == []
        # That relay died: another takes its events over.
        again = await store.claim_outbox(T0 + timedelta(seconds=30), 30, 10)
        assert [e.id for e in again] == ["e0", "e1"]

    async def test_events_wait_in_the_outbox_until_delivered(self, store: Store) -> None:
        p = payment("pay_1")
        p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), T0)
        await save(store, p)
        pending = await store.undelivered_events(10)
        assert [e.type for e in pending] == ["payment.initiated", "payment.succeeded"]
        envelope = pending[1].envelope
        assert envelope["detail-type"] == "payment.succeeded"
        assert envelope["account"] == "m1" and envelope["resources"] == ["pay_1"]
        assert envelope["detail"]["amount"] == 2000
        await store.commit(Changeset(routed=[pending[0].id]))
        assert [e.id for e in await store.undelivered_events(10)] == [pending[1].id]

    async def test_a_payments_timeline_is_oldest_first_and_its_merchants_alone(
        self, store: Store
    ) -> None:
        p = payment("pay_a")
        await save(store, p)
        p.apply_psp_outcome(PspOutcome(S.PROCESSING, "pi_a"), T0)
        p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_a", amount_received=2000), T0)
        await save(store, p, payment("pay_b"))
        timeline = await store.events_for_payment("m1", "pay_a")
        assert [e.type for e in timeline] == [
            "payment.initiated",
            "payment.processing",
            "payment.succeeded",
        ]
        assert {e.payment_id for e in timeline} == {"pay_a"}
        timeline[2].envelope["detail"]["amount"] = 1
        again = await store.events_for_payment("m1", "pay_a")
        assert again[2].envelope["detail"]["amount"] == 2000
        assert await store.events_for_payment("m2", "pay_a") == []

    async def test_event_log_is_per_merchant_newest_first_with_type_filter(
        self, store: Store
    ) -> None:
        a = payment("pay_a")
        a.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_a", amount_received=2000), T0)
        await save(store, a, payment("pay_b", merchant="m2"))
        events, more = await store.list_events("m1", None, 10, None)
        assert [e.type for e in events] == ["payment.succeeded", "payment.initiated"]
        assert not more
        events, more = await store.list_events("m1", None, 1, None)
        assert more
        older, _ = await store.list_events("m1", None, 10, events[0].id)
        assert [e.type for e in older] == ["payment.initiated"]
        only, _ = await store.list_events("m1", "payment.initiated", 10, None)
        assert [e.payment_id for e in only] == ["pay_a"]


class SharedOutboxContract:
    """For a backend several relays share (PostgreSQL): claims lease disjoint rows. The other
    backends are relayed by one process, whose claim may be the plain outbox read."""

    async def test_claims_at_once_take_disjoint_events(self, store: Store) -> None:
        await store.commit(_outbox_events(5))
        first, second = await asyncio.gather(
            store.claim_outbox(T0, 30, 3), store.claim_outbox(T0, 30, 3)
        )
        ids = [e.id for e in first], [e.id for e in second]
        assert not set(ids[0]) & set(ids[1])
        assert sorted(ids[0] + ids[1]) == [f"e{i}" for i in range(5)]
        assert sorted(map(len, ids)) == [2, 3]
        assert all(i == sorted(i) for i in ids)  # each batch oldest first


class KeyStoreContract:
    """API keys by hash: listed, revoked once."""

    async def test_api_keys_are_found_by_hash(self, store: Store) -> None:
        await store.add_api_key(ApiKey("h1", "m1", T0, "pmk_abc"))
        key = await store.find_api_key("h1")
        assert key == ApiKey("h1", "m1", T0, "pmk_abc", revoked_at=None)
        assert await store.find_api_key("h2") is None
        assert await store.ping()

    async def test_api_keys_are_listed_oldest_first_all_or_per_merchant(self, store: Store) -> None:
        await store.add_api_key(ApiKey("h3", "m1", T0 + timedelta(seconds=2), "pmk_ccc"))
        await store.add_api_key(ApiKey("h1", "m1", T0, "pmk_aaa"))
        await store.add_api_key(ApiKey("h2", "m2", T0 + timedelta(seconds=1), "pmk_bbb"))
        every = await store.list_api_keys()
        assert [(k.prefix, k.merchant_id, k.created_at, k.revoked_at) for k in every] == [
            ("pmk_aaa", "m1", T0, None),
            ("pmk_bbb", "m2", T0 + timedelta(seconds=1), None),
            ("pmk_ccc", "m1", T0 + timedelta(seconds=2), None),
        ]
        assert [k.prefix for k in await store.list_api_keys("m1")] == ["pmk_aaa", "pmk_ccc"]
        assert await store.list_api_keys("m3") == []

    async def test_a_revoked_key_stays_revoked_from_its_first_revocation(
        self, store: Store
    ) -> None:
        await store.add_api_key(ApiKey("h1", "m1", T0, "pmk_aaa"))
        await store.add_api_key(ApiKey("h2", "m1", T0, "pmk_bbb"))
        revoked_at = T0 + timedelta(minutes=5)
        assert await store.revoke_api_key("h1", revoked_at) is True
        key = await store.find_api_key("h1")
        assert key is not None and key.revoked_at == revoked_at
        assert await store.revoke_api_key("h1", T0 + timedelta(hours=1)) is False
        key = await store.find_api_key("h1")
        assert key is not None and key.revoked_at == revoked_at
        assert await store.revoke_api_key("h_unknown", revoked_at) is False
        key = await store.find_api_key("h2")
        assert key is not None and key.revoked_at is None
        assert [(k.prefix, k.revoked_at) for k in await store.list_api_keys("m1")] == [
            ("pmk_aaa", revoked_at),
            ("pmk_bbb", None),
        ]


class StateStoreContract:
    """Named blobs kept across restarts."""

    async def test_a_checkpoint_is_kept_and_replaced(self, store: Store) -> None:
        assert await store.get_blob("fraud") is None
        await store.put_blob("fraud", b"\x00one", T0)
        await store.put_blob("fraud", b"two", T0 + timedelta(seconds=30))
        assert await store.get_blob("fraud") == b"two"
        assert await store.get_blob("other") is None

    async def test_a_blob_written_in_parts_reads_back_whole_and_replaces(
        self, store: Store
    ) -> None:
        """The checkpoint goes in as parts (bytes, bytearrays, views of either), bigger and
        smaller than the blob it replaces; what is read is their concatenation."""
        frame = b"\x82\xa6format"
        big = bytearray(range(256)) * 1_000
        parts: list[bytes | bytearray | memoryview] = [
            memoryview(frame)[:3],
            memoryview(big),
            b"",
            bytearray(b"\x00tail"),
        ]
        await store.put_blob("fraud", b"small before", T0)
        await store.put_blob_parts("fraud", parts, T0 + timedelta(seconds=1))
        assert await store.get_blob("fraud") == b"".join(parts)
        await store.put_blob_parts("fraud", [b"sh", memoryview(b"ort")], T0 + timedelta(2))
        assert await store.get_blob("fraud") == b"short"
        await store.put_blob("fraud", b"whole again", T0 + timedelta(3))
        assert await store.get_blob("fraud") == b"whole again"
        assert await store.get_blob("other") is None

    async def test_parts_kept_by_its_spill_go_in_as_the_buffers_they_stand_for(
        self, store: Store
    ) -> None:
        """What the store's spill keeps (in a file, or as it is) stands for its bytes in
        `put_blob_parts`, beside plain buffers, over more than one MiB (the spill's copy goes
        a MiB at a time); and it stays readable until the spill is closed."""
        steps = [bytes(range(256)) * 5_000, b"", b"\x93\x01\x02", os.urandom(1 << 20)]
        spill = store.spill()
        try:
            kept = [spill.keep(bytearray(step)) for step in steps]
            parts: list[BlobPart] = [memoryview(b"\x82frame")[:2], *kept, b"end"]
            await store.put_blob_parts("fraud", parts, T0)
            assert await store.get_blob("fraud") == b"\x82f" + b"".join(steps) + b"end"
            await store.put_blob_parts("fraud", kept[2:3], T0 + timedelta(1))
            assert await store.get_blob("fraud") == b"\x93\x01\x02"
        finally:
            spill.close()


def _captured(pid: str, merchant: str = "m1", amount: int = 2000) -> Payment:
    """A payment authorised (a hold) and captured (the hold released, the money and the fee
    booked)."""
    p = payment(pid, merchant=merchant, amount=amount)
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_" + pid), T0)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_" + pid, amount_received=amount), T0)
    return p


class LedgerStoreContract:
    """Transactions are kept with the change that booked them, once; balances are the sums
    of their postings, split by the day the money becomes available."""

    async def test_a_capture_books_the_hold_its_release_the_charge_and_its_fee(
        self, store: Store
    ) -> None:
        await save(store, _captured("pay_1", amount=10_000))
        # Stripe's schedule: 2.9% + 30 = 320; available two days after the capture.
        day = T0.date()
        assert await store.ledger_balances("m1", day) == {
            ("authorized_funds", "usd"): (0, 0),
            ("authorizations", "usd"): (0, 0),
            ("psp_receivable", "usd"): (0, 9_680),
            ("sales", "usd"): (0, -10_000),
            ("psp_fees", "usd"): (0, 320),
        }
        later = await store.ledger_balances("m1", day + timedelta(days=2))
        assert later[("psp_receivable", "usd")] == (9_680, 0)
        assert await store.ledger_balances("m2", day) == {}

    async def test_balance_transactions_are_the_merchants_money_moves_newest_first(
        self, store: Store
    ) -> None:
        first = _captured("pay_1", amount=10_000)
        await save(store, first)
        refund = first.start_refund("re_1", 4_000, None, T0)
        first.settle_refund(refund.id, True, T0 + timedelta(hours=1))
        await save(store, first, _captured("pay_2", amount=5_000), _captured("pay_o", "m2"))
        page, more = await store.balance_transactions("m1", limit=2)
        assert [(t.payment_id, t.kind.value, t.amount, t.fee, t.net) for t in page] == [
            ("pay_2", "charge", 5_000, 175, 4_825),
            ("pay_1", "refund", -4_000, 0, -4_000),
        ]
        assert more
        rest, more = await store.balance_transactions("m1", 10, starting_after=page[-1].id)
        assert [(t.payment_id, t.kind.value, t.net) for t in rest] == [("pay_1", "charge", 9_680)]
        assert not more
        only, _ = await store.balance_transactions("m1", 10, payment_id="pay_1")
        assert [t.kind.value for t in only] == ["refund", "charge"]

    async def test_a_booking_replayed_is_kept_once_and_a_failed_commit_books_nothing(
        self, store: Store
    ) -> None:
        p = _captured("pay_1")
        changes = Changeset()
        changes.save(p)
        await store.commit(changes)
        again = Changeset(ledger=list(changes.ledger))  # the same transactions, re-sent
        await store.commit(again)
        stale = _captured("pay_1")  # version 0 again: refused, and its booking with it
        with pytest.raises(VersionConflict):
            await save(store, stale)
        assert len(await store.ledger_transactions("stripe", T0, T0 + timedelta(days=1))) == 3
        sums = await store.ledger_balances("m1", T0.date() + timedelta(days=2))
        assert sums[("psp_receivable", "usd")] == (2000 - 88, 0)

    async def test_a_fee_adjustment_is_a_balance_transaction_of_its_payment_kept_once(
        self, store: Store
    ) -> None:
        """Reconciliation books the fee the PSP's report charged (320 booked, 345 charged)."""
        await save(store, _captured("pay_1", amount=10_000))
        [charge] = [
            t
            for t in await store.ledger_transactions("stripe", T0, T0 + timedelta(days=1))
            if t.kind == Move.CAPTURE
        ]
        adjustment = fee_adjustment(charge, 345, T0 + timedelta(hours=23))
        for _ in range(2):  # a day reconciled twice
            await store.commit(Changeset(ledger=[adjustment]))
        page, _ = await store.balance_transactions("m1", 10, payment_id="pay_1")
        assert [(t.kind.value, t.amount, t.fee, t.net) for t in page] == [
            ("adjustment", 0, 25, -25),
            ("charge", 10_000, 320, 9_680),
        ]
        sums = await store.ledger_balances("m1", T0.date() + timedelta(days=2))
        assert (sums[("psp_fees", "usd")], sums[("psp_receivable", "usd")]) == (
            (345, 0),
            (9_655, 0),
        )

    async def test_a_psps_day_is_read_across_merchants_oldest_first(self, store: Store) -> None:
        await save(store, _captured("pay_1"), _captured("pay_2", "m2"))
        day = await store.ledger_transactions("stripe", T0, T0 + timedelta(days=1))
        assert {t.merchant_id for t in day} == {"m1", "m2"}
        assert [t.kind.value for t in day if t.payment_id == "pay_1"] == [
            "authorization",
            "authorization_release",
            "charge",
        ]
        # Each carries the PSP's reference of its payment: reconciliation needs no lookup.
        assert {t.psp_reference for t in day} == {"pi_pay_1", "pi_pay_2"}
        assert await store.ledger_transactions("adyen", T0, T0 + timedelta(days=1)) == []
        assert (
            await store.ledger_transactions(
                "stripe", T0 + timedelta(days=1), T0 + timedelta(days=2)
            )
            == []
        )


# -- the ledger's invariants, for any sequence of PSP answers, webhooks and refunds ------------

_STEP = st.tuples(
    st.integers(0, 1),  # which of two payments
    st.sampled_from(["auth", "capture", "fail", "cancel", "refund", "dispute", "replay"]),
    st.integers(1, 100),  # a percentage: of the amount to capture, refund or dispute
    st.booleans(),  # does the refund succeed at the PSP
)


def _apply(p: Payment, op: str, pct: int, ok: bool, disputes: dict[str, int]) -> None:
    """One command or webhook on `p`, as the PSP might send it: in any order, repeated; what
    the domain refuses is refused."""
    ref = "pi_" + p.id
    part = max(1, p.amount * pct // 100)
    try:
        if op == "auth":
            p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, ref), T0)
        elif op == "capture":
            p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, ref, amount_received=part), T0)
        elif op == "fail":
            p.apply_psp_outcome(PspOutcome(S.FAILED, ref), T0)
        elif op == "cancel":
            p.apply_psp_outcome(PspOutcome(S.CANCELED, ref), T0)
        elif op == "refund":
            amount = max(1, p.refundable * pct // 100)
            refund = p.start_refund(f"re_{p.id}_{len(p.refunds)}", amount, None, T0)
            p.settle_refund(refund.id, ok, T0)
        elif op == "dispute" and p.open_dispute(f"dp_{p.id}", part, None, T0):
            disputes[p.id] = part
    except DomainError:
        pass


class LedgerPropertyContract:
    """For any sequence: every merchant's accounts sum to zero per currency, and what the
    PSPs owe equals the payments' captured minus refunded minus fees minus disputes."""

    @settings(
        max_examples=40,
        deadline=None,
        # One store serves every example (each uses its own merchant); each backend's class
        # runs this same method, which is what differing_executors is about.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        steps=st.lists(_STEP, min_size=4, max_size=30),
        amounts=st.lists(st.integers(1, 10**7), min_size=2, max_size=2),
    )
    @example(  # every kind of movement at least once
        steps=[
            (0, "auth", 100, True),
            (0, "capture", 60, True),
            (0, "refund", 50, True),
            (0, "replay", 1, True),
            (0, "refund", 100, False),
            (0, "dispute", 30, True),
            (1, "auth", 1, True),
            (1, "cancel", 1, True),
        ],
        amounts=[10_000, 777],
    )
    async def test_the_books_balance_for_any_sequence(
        self, store: Store, steps: list[tuple[int, str, int, bool]], amounts: list[int]
    ) -> None:
        merchant = "m_" + uuid.uuid4().hex  # the store is shared by the examples
        payments = [
            payment(f"pay_{uuid.uuid4().hex}", merchant=merchant, amount=a) for a in amounts
        ]
        disputes: dict[str, int] = {}
        last: list[LedgerTransaction] = []
        for index, op, pct, ok in steps:
            p = payments[index]
            if op == "replay":  # a redelivered commit: the same transactions again
                await store.commit(Changeset(ledger=list(last)))
                continue
            _apply(p, op, pct, ok, disputes)
            if p.events or p.version == 0:
                changes = Changeset()
                changes.save(p)
                await store.commit(changes)
                changes.committed()
                last = changes.ledger
        sums = await store.ledger_balances(merchant, T0.date() + timedelta(days=30))
        assert all(later == 0 for _, later in sums.values())  # all settled 30 days on
        books = {account: now for (account, _), (now, _) in sums.items()}
        assert sum(books.values()) == 0
        stripe = schedule("stripe")
        owed = sum(
            p.amount_captured
            - p.amount_refunded
            - (stripe.fee(p.amount_captured) if p.amount_captured else 0)
            - (disputes[p.id] + stripe.dispute_fee if p.id in disputes else 0)
            for p in payments
        )
        assert books.get("psp_receivable", 0) == owed
        assert books.get("sales", 0) == -sum(p.amount_captured for p in payments)
        held = sum(p.amount for p in payments if p.status == S.REQUIRES_CAPTURE)
        assert books.get("authorized_funds", 0) == held == -books.get("authorizations", 0)


class StoreContract(
    UnitOfWorkContract,
    PaymentStoreContract,
    IdempotencyStoreContract,
    EventLogContract,
    KeyStoreContract,
    StateStoreContract,
    LedgerStoreContract,
    LedgerPropertyContract,
):
    """The whole Store port: what a backend subclasses once."""
