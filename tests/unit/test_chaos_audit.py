"""The chaos audit can fail: fabricated breaches are each reported, a clean record is not."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.chaos_audit import (
    AckCapture,
    Acknowledged,
    AckPayment,
    AckRefund,
    Check,
    EventRow,
    KeyWait,
    LedgerEntry,
    NotificationRow,
    Replay,
    Restart,
    StoreSnapshot,
    audit,
)


def payment(
    pid: str,
    status: str = "succeeded",
    amount: int = 1000,
    *,
    captured: int | None = None,
    refunded: int = 0,
    connector: str = "stripe",
    ref: str | None = None,
    order: str | None = None,
    refunds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    taken = status in ("succeeded", "partially_refunded", "refunded", "disputed")
    return {
        "id": pid,
        "amount": amount,
        "currency": "usd",
        "status": status,
        "amount_captured": (amount if taken else 0) if captured is None else captured,
        "amount_refunded": refunded,
        "connector": connector,
        "connector_payment_id": ref or f"pi_{pid}",
        "attempt": 1,
        "retired_refs": [],
        "metadata": {"order_id": order or f"order-{pid}"},
        "refunds": refunds or [],
    }


def row(
    pid: str | None,
    captured: int = 1000,
    *,
    psp: str = "stripe",
    ref: str | None = None,
    refunded: int = 0,
    status: str = "succeeded",
) -> LedgerEntry:
    return LedgerEntry(
        psp=psp,
        psp_reference=ref or f"pi_{pid}",
        reference=pid,
        currency="usd",
        amount=1000,
        amount_captured=captured,
        amount_refunded=refunded,
        status=status,
        charged=captured > 0,
    )


def succeeded_events(*pids: str) -> tuple[list[EventRow], list[NotificationRow]]:
    events = [EventRow(f"evt_{p}", p, "payment.succeeded", True) for p in pids]
    return events, [NotificationRow(f"ntf_{p}", p, f"evt_{p}") for p in pids]


def clean_run() -> tuple[Acknowledged, StoreSnapshot, list[LedgerEntry], list[Restart]]:
    """Two paid payments, one refunded in part, one declined; every record agrees."""
    refund = {"id": "re_1", "amount": 300, "status": "succeeded"}
    store = StoreSnapshot(
        payments={
            "pay_a": payment("pay_a"),
            "pay_b": payment("pay_b", "partially_refunded", refunded=300, refunds=[refund]),
            "pay_c": payment("pay_c", "failed"),
        }
    )
    store.events, store.notifications = succeeded_events("pay_a", "pay_b")
    ledger = [row("pay_a"), row("pay_b", refunded=300), row("pay_c", 0, status="declined")]
    acks = Acknowledged(
        payments={
            p: AckPayment(f"order-{p}", p, 1000, "usd", store.payments[p]["status"])
            for p in store.payments
        },
        captures=[AckCapture("pay_a", 1000)],
        refunds=[AckRefund("pay_b", "re_1", 300, "succeeded")],
        replays=[Replay("order-pay_a", "pay_a", "pay_a")],
    )
    return acks, store, ledger, [Restart("api", 1.0, 0.5, 0.6)]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name.split(" (")[0]: c for c in checks}


def failed(checks: list[Check]) -> set[str]:
    return {name for name, c in by_name(checks).items() if c.failed}


def test_a_clean_run_has_no_breach() -> None:
    # A killed request's key, answered once its lease ran out.
    checks = audit(*clean_run(), key_waits=[KeyWait("POST /v1/payments key=k", 59.0, True)])
    assert failed(checks) == set()
    assert all(c.checked > 0 for c in checks if c.kind == "invariant")


def test_two_charges_for_one_payment_and_a_stuck_payment_are_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    # pay_a charged a second time on another PSP; pay_d left pending although Adyen took it.
    ledger += [row("pay_a", psp="adyen", ref="ADY1"), row("pay_d", 700, psp="adyen", ref="ADY2")]
    store.payments["pay_d"] = payment("pay_d", "pending", 700, connector="adyen", ref="ADY2")

    checks = by_name(audit(acks, store, ledger, restarts))

    double = checks["no payment charged twice"]
    assert double.breach_count == 1
    assert "pay_a" in double.breaches[0] and "ADY1" in double.breaches[0]
    stuck = checks["no payment left pending/processing after recovery"]
    assert stuck.breach_count == 1
    assert stuck.breaches[0].startswith("pay_d: store: pending")
    # The second charge and the unrecorded one also disagree with paymesh's amounts.
    amounts = checks["PSP captured = paymesh amount_captured"]
    assert amounts.breach_count == 2
    assert failed(list(checks.values())) == {
        "no payment charged twice",
        "no payment left pending/processing after recovery",
        "PSP captured = paymesh amount_captured",
    }


def test_a_charge_paymesh_has_no_payment_for_is_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    ledger.append(row("pay_ghost", 500))
    check = by_name(audit(acks, store, ledger, restarts))["no PSP charge without a paymesh payment"]
    assert check.breach_count == 1 and "pay_ghost" in check.breaches[0]


def test_a_lost_acknowledged_payment_and_a_payment_that_went_back_are_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    acks.payments["pay_lost"] = AckPayment("order-x", "pay_lost", 1000, "usd", "succeeded")
    store.payments["pay_a"]["status"] = "pending"  # answered succeeded, stored pending
    check = by_name(audit(acks, store, ledger, restarts))["every acknowledged payment exists"]
    assert check.breach_count == 2
    assert any("pay_lost: not in the store" in b for b in check.breaches)
    assert any(b.startswith("answered succeeded, pay_a: store: pending") for b in check.breaches)


def test_refunds_that_disagree_or_never_settle_are_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    # The PSP refunded 300 more on pay_a, which paymesh still has as a pending refund.
    store.payments["pay_a"]["refunds"] = [{"id": "re_2", "amount": 300, "status": "pending"}]
    ledger[0] = row("pay_a", refunded=300)
    checks = by_name(audit(acks, store, ledger, restarts))
    assert checks["refund totals match the PSP"].breach_count == 1
    assert checks["no refund left pending after recovery"].breach_count == 1


def test_a_confirmation_sent_twice_or_never_is_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    store.notifications.append(NotificationRow("ntf_again", "pay_a", "evt_pay_a"))
    store.notifications = [n for n in store.notifications if n.payment_id != "pay_b"]
    checks = by_name(audit(acks, store, ledger, restarts))
    check = checks["every payment.succeeded confirmed exactly once"]
    assert check.breach_count == 2


def test_two_payments_for_one_order_and_a_replay_with_another_id_are_reported() -> None:
    acks, store, ledger, restarts = clean_run()
    store.payments["pay_twin"] = payment("pay_twin", "failed", order="order-pay_a")
    acks.replays.append(Replay("order-pay_a", "pay_a", "pay_twin"))
    checks = by_name(audit(acks, store, ledger, restarts))
    assert checks["one payment per client order"].breach_count == 1
    assert checks["idempotent replays answer the same payment"].breach_count == 1


def test_an_outbox_left_full_is_a_breach_and_dead_letters_only_a_report() -> None:
    from benchmarks.chaos_audit import DeliveryRow

    acks, store, ledger, restarts = clean_run()
    store.events.append(EventRow("evt_late", "pay_c", "payment.failed", False))
    store.deliveries = [
        DeliveryRow(
            "dlv_1", "evt_pay_a", "payment-succeeded", "confirmation", "pending", 2, "boom"
        ),
        DeliveryRow("dlv_2", "evt_pay_b", "payment-succeeded", "inventory", "dead", 4, "gone"),
    ]
    checks = by_name(audit(acks, store, ledger, restarts))
    assert checks["outbox drained"].breach_count == 2
    assert checks["outbox drained"].summary.endswith("1 dead letters")
    dead = checks["dead letters"]
    assert (dead.kind, dead.failed, dead.summary) == (
        "report",
        False,
        "payment-succeeded/inventory x1",
    )


@pytest.mark.parametrize(("ready", "serving"), [(None, None), (0.5, None)])
def test_a_restart_that_never_served_is_a_breach(
    ready: float | None, serving: float | None
) -> None:
    acks, store, ledger, restarts = clean_run()
    restarts.append(Restart("api", 2.0, ready, serving, cut=3))
    check = by_name(audit(acks, store, ledger, restarts))["kills survived"]
    assert (check.checked, check.breach_count) == (2, 1)
    assert check.summary == "1 kills cut 3 requests in flight"


def test_a_key_still_in_use_long_after_its_lease_is_a_breach() -> None:
    waits = [
        KeyWait("POST /v1/payments key=a", 58.0, True),
        KeyWait("POST /v1/payments/pay_x/capture key=b", 89.5, False),
    ]
    check = by_name(audit(*clean_run(), key_waits=waits))["no idempotency key held past its lease"]
    assert (check.checked, check.breach_count) == (2, 1)
    assert check.breaches == [
        "POST /v1/payments/pay_x/capture key=b: 409 "
        "idempotency_key_in_use for 89.5s, then the client gave up"
    ]
