"""Manual review in the payment aggregate: opened by the authorisation of a payment scored
`review`, closed once, and the only way to capture while it is open."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain.errors import InvalidTransition
from paymesh.domain.payment import FraudAssessment, Payment, PspOutcome
from paymesh.domain.review import ReviewStatus, payment_id_for, review_id_for
from paymesh.domain.status import PaymentStatus

S = PaymentStatus
R = ReviewStatus
NOW = datetime(2026, 11, 25, tzinfo=UTC)
REVIEW = FraudAssessment(score=75, factors=("velocity_5m", "unknown_device"), decision="review")


def held_payment(capture_method: str = "automatic") -> Payment:
    return Payment.initiate(
        now=NOW,
        fraud=REVIEW,
        id="pay_abc",
        merchant_id="m",
        amount=5000,
        currency="usd",
        customer_id="c",
        payment_method="pm_card_visa",
        capture_method=capture_method,
        connector="stripe",
    )


def authorised(p: Payment) -> Payment:
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_1", amount_capturable=5000), NOW)
    return p


def test_a_review_decision_asks_the_psp_for_a_manual_capture() -> None:
    p = held_payment("automatic")
    assert p.psp_capture_method == "manual"
    assert p.capture_method == "automatic"
    allowed = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_x",
        merchant_id="m",
        amount=1,
        currency="usd",
        customer_id="c",
        payment_method="pm",
        capture_method="automatic",
        connector="stripe",
    )
    assert allowed.psp_capture_method == "automatic"


def test_the_authorisation_opens_the_review_with_the_factors() -> None:
    p = authorised(held_payment())
    assert p.review is not None
    assert (p.review.id, p.review.status) == ("rev_abc", R.OPEN)
    assert p.review.reason == "fraud score velocity_5m, unknown_device"
    types = [e.type for e in p.events]
    assert types == ["payment.initiated", "payment.requires_capture", "review.opened"]
    assert p.events[-1].detail["review_id"] == "rev_abc"
    # A repeated authorisation (webhook after the API answer) opens nothing more.
    assert not p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_1"), NOW)
    assert [e.type for e in p.events].count("review.opened") == 1


def test_an_open_review_blocks_a_direct_capture() -> None:
    p = authorised(held_payment())
    with pytest.raises(InvalidTransition):
        p.ensure_capturable(None)
    p.close_review(R.APPROVED, NOW)
    assert p.ensure_capturable(None) == 5000


def test_closing_is_idempotent_and_final() -> None:
    p = authorised(held_payment())
    later = NOW + timedelta(minutes=5)
    assert p.close_review(R.APPROVED, later)
    assert not p.close_review(R.APPROVED, later + timedelta(minutes=1))
    assert p.review is not None and p.review.closed_at == later
    with pytest.raises(InvalidTransition):
        p.close_review(R.REJECTED, later)
    assert [e.type for e in p.events].count("review.approved") == 1


def test_a_void_closes_an_open_review_as_rejected() -> None:
    p = authorised(held_payment())
    p.apply_psp_outcome(PspOutcome(S.CANCELED, "pi_1"), NOW)
    assert p.review is not None and p.review.status == R.REJECTED
    assert [e.type for e in p.events][-2:] == ["payment.canceled", "review.rejected"]


def test_a_declined_review_payment_opens_no_review() -> None:
    p = held_payment()
    p.apply_psp_outcome(PspOutcome(S.FAILED, "pi_1"), NOW)
    assert p.review is None


def test_without_a_review_there_is_nothing_to_decide() -> None:
    p = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_y",
        merchant_id="m",
        amount=1,
        currency="usd",
        customer_id="c",
        payment_method="pm",
        capture_method="manual",
        connector="stripe",
    )
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_1"), NOW)
    assert p.review is None
    with pytest.raises(InvalidTransition):
        p.close_review(R.APPROVED, NOW)
    assert p.open_review(NOW, "rule high-risk")  # a rule may still ask for one
    assert p.review is not None and p.review.reason == "rule high-risk"
    assert not p.open_review(NOW, "again")


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=30))
def test_review_and_payment_ids_map_both_ways(suffix: str) -> None:
    assert payment_id_for(review_id_for(f"pay_{suffix}")) == f"pay_{suffix}"


@pytest.mark.parametrize("bad", ["", "rev_", "pay_1", "review_1"])
def test_a_review_id_that_names_no_payment(bad: str) -> None:
    assert payment_id_for(bad) is None


# -- settled at the PSP while under review ----------------------------------------------------


def test_a_capture_at_the_psp_closes_the_open_review_for_the_fraud_team() -> None:
    p = authorised(held_payment())
    later = NOW + timedelta(minutes=3)
    assert p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=5000), later)
    assert p.review is not None
    assert (p.review.status, p.review.closed_reason, p.review.closed_at) == (
        R.CLOSED,
        "captured_at_psp",
        later,
    )
    closed = p.events[-1]
    assert closed.type == "review.closed"
    assert (
        closed.detail["review_id"],
        closed.detail["reason"],
        closed.detail["amount_captured"],
        closed.detail["fraud_score"],
        closed.detail["status"],
    ) == ("rev_abc", "captured_at_psp", 5000, 75, "succeeded")
    # No one decided, and there is nothing left to decide.
    types = [e.type for e in p.events]
    assert "review.approved" not in types and "review.rejected" not in types
    for decision in (R.APPROVED, R.REJECTED):
        with pytest.raises(InvalidTransition):
            p.close_review(decision, later)
    # The same capture reported again closes nothing more.
    assert not p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=5000), later)
    assert [e.type for e in p.events].count("review.closed") == 1


def test_a_failure_at_the_psp_closes_the_open_review() -> None:
    p = authorised(held_payment())
    p.apply_psp_outcome(PspOutcome(S.FAILED, "pi_1"), NOW)
    assert p.review is not None
    assert (p.review.status, p.review.closed_reason) == (R.CLOSED, "failed_at_psp")
    assert p.events[-1].type == "review.closed"


def test_a_held_payment_captured_before_its_review_opened_gets_one_closed() -> None:
    p = held_payment()  # the PSP captured what it was asked only to authorise
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=5000), NOW)
    assert p.review is not None
    assert (p.review.id, p.review.status, p.review.closed_reason, p.review.reason) == (
        "rev_abc",
        R.CLOSED,
        "captured_at_psp",
        "fraud score velocity_5m, unknown_device",
    )
    assert [e.type for e in p.events][-2:] == ["payment.succeeded", "review.closed"]


def test_a_review_a_person_decided_stays_as_decided_when_the_capture_lands() -> None:
    p = authorised(held_payment())
    p.close_review(R.APPROVED, NOW)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=5000), NOW)
    assert p.review is not None and p.review.status == R.APPROVED
    assert p.review.closed_reason is None
    assert "review.closed" not in [e.type for e in p.events]


def test_a_review_a_rule_opened_closes_on_a_capture_at_the_psp_too() -> None:
    p = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_r",
        merchant_id="m",
        amount=900,
        currency="usd",
        customer_id="c",
        payment_method="pm",
        capture_method="manual",
        connector="stripe",
    )
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_r", amount_capturable=900), NOW)
    assert p.open_review(NOW, "rule high-risk")
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_r", amount_received=900), NOW)
    assert p.review is not None
    assert (p.review.status, p.review.closed_reason) == (R.CLOSED, "captured_at_psp")


def test_an_allowed_payment_captured_at_the_psp_has_no_review() -> None:
    p = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(0, (), "allow"),
        id="pay_n",
        merchant_id="m",
        amount=900,
        currency="usd",
        customer_id="c",
        payment_method="pm",
        capture_method="manual",
        connector="stripe",
    )
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_n", amount_received=900), NOW)
    assert p.review is None
