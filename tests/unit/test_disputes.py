"""Disputes on the payment aggregate: opened, then won or lost, once; kept in the payment's
document, old documents included (issue 17, item 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.adapters.codec import payment_from_doc, payment_to_doc
from paymesh.domain.dispute import DisputeStatus, dispute_id_for, payment_id_for
from paymesh.domain.errors import InvalidTransition
from paymesh.domain.ledger import Move, Movement
from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome
from paymesh.domain.status import DISPUTE_WON_RETURNS, TRANSITIONS, PaymentStatus
from paymesh.fraud import FraudEngine
from paymesh.ports.bus import Delivery, Target
from paymesh.ports.store import Changeset, Store
from paymesh.service.fraud_stream import FraudStream

S = PaymentStatus
NOW = datetime(2026, 11, 24, tzinfo=UTC)
LATER = NOW + timedelta(days=30)


DELIVERY = Delivery(
    "d",
    "e",
    "m",
    "fraud-stream",
    Target("fraud", "builtin", "fraud_detection"),
    event_time=NOW,
    created_at=NOW,
    next_attempt_at=NOW,
)


class Sink:
    """The store as the stream uses it: it commits alerts."""

    def __init__(self) -> None:
        self.alerts: list[Changeset] = []

    async def commit(self, changes: Changeset) -> None:
        self.alerts.append(changes)


def captured(amount: int = 2000) -> Payment:
    p = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(score=12, factors=(), decision="allow"),
        id="pay_abc",
        merchant_id="m",
        amount=amount,
        currency="usd",
        customer_id="c",
        payment_method="pm_card_createDispute",
        capture_method="automatic",
        connector="stripe",
    )
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=amount), NOW)
    return p


def movements(p: Payment, event_type: str) -> list[tuple[Movement, ...]]:
    return [e.movements for e in p.events if e.type == event_type]


def test_an_opened_dispute_withdraws_the_funds_and_is_announced_as_payment_dispute() -> None:
    p = captured()
    assert p.open_dispute("dp_1", 2000, "fraudulent", NOW)
    assert p.status == S.DISPUTED
    assert p.dispute is not None
    assert (p.dispute.id, p.dispute.connector_dispute_id, p.dispute.status) == (
        "dsp_abc",
        "dp_1",
        DisputeStatus.OPEN,
    )
    opened = p.events[-1]
    assert opened.type == "payment.dispute.created"
    assert opened.movements == (Movement(Move.DISPUTE, 2000),)
    assert opened.detail["dispute_id"] == "dsp_abc"
    assert opened.detail["connector_dispute_id"] == "dp_1"
    assert (opened.detail["dispute_amount"], opened.detail["reason"]) == (2000, "fraudulent")
    assert opened.detail["fraud_score"] == 12  # what the fraud alert reports
    assert not p.open_dispute("dp_1", 2000, "fraudulent", NOW)  # delivered again
    assert not p.open_dispute("dp_2", 2000, None, NOW)  # one dispute per payment
    assert sum(e.type == "payment.dispute.created" for e in p.events) == 1


def test_a_won_dispute_books_the_reversal_and_the_payment_is_captured_again() -> None:
    p = captured()
    p.open_dispute("dp_1", 2000, "fraudulent", NOW)
    assert p.close_dispute("dp_1", True, LATER)
    assert p.status == S.SUCCEEDED
    assert p.dispute is not None
    assert (p.dispute.status, p.dispute.closed_at) == (DisputeStatus.WON, LATER)
    closed = p.events[-1]
    assert closed.type == "payment.dispute.closed"
    assert closed.detail["outcome"] == "won"
    assert closed.detail["status"] == "succeeded"
    # The funds come back; the dispute fee (booked with the opening) does not.
    assert closed.movements == (Movement(Move.DISPUTE_WON, 2000),)


def test_a_lost_dispute_stays_disputed_and_moves_nothing_more() -> None:
    p = captured()
    p.open_dispute("dp_1", 2000, "fraudulent", NOW)
    assert p.close_dispute("dp_1", False, LATER)
    assert p.status == S.DISPUTED
    assert p.dispute is not None and p.dispute.status == DisputeStatus.LOST
    assert p.events[-1].detail["outcome"] == "lost"
    assert movements(p, "payment.dispute.closed") == [()]
    # Final: a late word of success from the PSP does not lift it.
    assert not p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), LATER)
    assert p.status == S.DISPUTED


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("again", [True, False])
def test_a_closed_dispute_is_closed_once_whatever_comes_next(first: bool, again: bool) -> None:
    p = captured()
    p.open_dispute("dp_1", 2000, None, NOW)
    p.close_dispute("dp_1", first, LATER)
    status, events = p.status, len(p.events)
    assert not p.close_dispute("dp_1", again, LATER + timedelta(days=1))
    assert (p.status, len(p.events)) == (status, events)
    assert p.dispute is not None and p.dispute.closed_at == LATER


def test_a_verdict_on_a_dispute_the_payment_does_not_hold_is_refused() -> None:
    p = captured()
    with pytest.raises(InvalidTransition):
        p.close_dispute("dp_1", True, LATER)  # never disputed
    p.open_dispute("dp_1", 2000, None, NOW)
    with pytest.raises(InvalidTransition, match="dp_other"):
        p.close_dispute("dp_other", True, LATER)  # another payment's dispute
    assert p.dispute is not None and p.dispute.status == DisputeStatus.OPEN


@given(
    refunded=st.integers(0, 2000),
    disputed=st.integers(1, 2000),
)
def test_a_won_dispute_returns_the_status_the_refunds_left(refunded: int, disputed: int) -> None:
    p = captured()
    if refunded:
        p.start_refund("re_1", refunded, None, NOW)
        p.settle_refund("re_1", True, NOW)
    before = p.status
    p.open_dispute("dp_1", disputed, None, NOW)
    p.close_dispute("dp_1", True, LATER)
    assert p.status == before
    assert p.status in DISPUTE_WON_RETURNS
    # The way back is the command's, never the table's: a PSP outcome cannot take it.
    assert all(target not in TRANSITIONS[S.DISPUTED] for target in DISPUTE_WON_RETURNS)


def test_the_dispute_id_is_derived_from_the_payments_both_ways() -> None:
    assert dispute_id_for("pay_7Qx") == "dsp_7Qx"
    assert payment_id_for("dsp_7Qx") == "pay_7Qx"
    assert payment_id_for("dp_7Qx") is None and payment_id_for("dsp_") is None


def test_the_dispute_is_kept_in_the_payment_document() -> None:
    p = captured()
    p.open_dispute("dp_1", 1500, "fraudulent", NOW)
    p.close_dispute("dp_1", True, LATER)
    back = payment_from_doc(payment_to_doc(p), 3)
    assert back.dispute == p.dispute
    assert back.status == S.SUCCEEDED


def test_a_document_from_before_disputes_were_kept_whole_still_reads() -> None:
    p = captured()
    p.open_dispute("dp_old", 2000, "fraudulent", NOW)
    doc = msgspec.json.decode(payment_to_doc(p))
    del doc["dispute"]  # as the previous version wrote it: the PSP's id only
    assert doc["dispute_id"] == "dp_old"
    old = payment_from_doc(msgspec.json.encode(doc), 1)
    assert old.dispute is not None
    assert (old.dispute.id, old.dispute.connector_dispute_id, old.dispute.amount) == (
        "dsp_abc",
        "dp_old",
        2000,
    )
    assert old.dispute.status == DisputeStatus.OPEN
    assert old.close_dispute("dp_old", True, LATER)  # and it can be decided now
    undisputed = msgspec.json.decode(payment_to_doc(captured()))
    del undisputed["dispute"]
    assert payment_from_doc(msgspec.json.encode(undisputed), 1).dispute is None


async def test_the_dispute_the_payment_records_raises_a_fraud_alert() -> None:
    # The stream once waited for an event nothing emitted: it is keyed on the domain's own.
    p = captured()
    p.open_dispute("dp_1", 2000, "fraudulent", NOW)
    sink = Sink()
    stream = FraudStream(FraudEngine(), cast(Store, sink), lambda: LATER)
    await stream(p.events[-1].envelope(), DELIVERY)
    [changes] = sink.alerts
    [alert] = changes.events
    assert (alert.type, alert.detail["reason"], alert.detail["payment_id"]) == (
        "fraud.alert",
        "dispute",
        "pay_abc",
    )
    assert alert.detail["fraud_score"] == 12
