"""The payment aggregate: transitions, monotonicity, refunds, events."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain.errors import InvalidTransition, RefundNotAllowed
from paymesh.domain.payment import Failure, FraudAssessment, Payment, PspOutcome
from paymesh.domain.status import TRANSITIONS, PaymentStatus, reachable

S = PaymentStatus
NOW = datetime(2026, 11, 24, tzinfo=UTC)
ALLOW = FraudAssessment(score=0, factors=(), decision="allow")


def new_payment(**kw: Any) -> Payment:
    fields = dict(
        id="pay_1",
        merchant_id="m",
        amount=2000,
        currency="usd",
        customer_id="c",
        payment_method="pm_card_visa",
        capture_method="automatic",
        connector="stripe",
    )
    fields.update(kw)
    return Payment.initiate(now=NOW, fraud=ALLOW, **fields)


def test_the_table_has_no_cycles_so_no_status_can_come_back() -> None:
    for status in S:
        assert status not in reachable(status)


@pytest.mark.parametrize("terminal", [S.FAILED, S.CANCELED, S.BLOCKED, S.DISPUTED])
def test_terminal_statuses_go_nowhere(terminal: PaymentStatus) -> None:
    assert TRANSITIONS[terminal] == frozenset()


def test_initiate_records_payment_initiated_with_the_fraud_score() -> None:
    p = new_payment()
    assert p.status == S.PENDING
    assert [e.type for e in p.events] == ["payment.initiated"]
    assert p.events[0].detail["fraud_score"] == 0
    assert p.events[0].detail["amount"] == 2000


def test_success_then_a_late_failure_webhook_changes_nothing() -> None:
    p = new_payment()
    assert p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), NOW)
    failure = Failure("card_declined", "no", retryable=False)
    assert not p.apply_psp_outcome(PspOutcome(S.FAILED, "pi_1", failure=failure), NOW)
    assert p.status == S.SUCCEEDED
    assert p.failure is None
    assert [e.type for e in p.events] == ["payment.initiated", "payment.succeeded"]


def test_the_same_outcome_twice_records_one_event() -> None:
    p = new_payment()
    out = PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000)
    p.apply_psp_outcome(out, NOW)
    assert not p.apply_psp_outcome(out, NOW)
    assert sum(e.type == "payment.succeeded" for e in p.events) == 1


def test_failed_outcome_keeps_the_decline_and_says_if_retryable() -> None:
    p = new_payment()
    failure = Failure(
        "card_declined",
        "Your card has insufficient funds.",
        retryable=False,
        decline_code="insufficient_funds",
    )
    p.apply_psp_outcome(PspOutcome(S.FAILED, "pi_1", failure=failure), NOW)
    assert p.status == S.FAILED
    assert p.failure == failure
    assert p.events[-1].type == "payment.failed"
    assert p.events[-1].detail["retryable"] is False


def test_capture_a_failed_payment_is_refused() -> None:
    p = new_payment()
    p.apply_psp_outcome(PspOutcome(S.FAILED, failure=Failure("x", "y", False)), NOW)
    with pytest.raises(InvalidTransition):
        p.ensure_capturable(None)


def test_manual_capture_records_captured_and_succeeded() -> None:
    p = new_payment(capture_method="manual")
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_1"), NOW)
    assert p.ensure_capturable(1500) == 1500
    with pytest.raises(RefundNotAllowed):
        p.ensure_capturable(2001)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=1500), NOW)
    assert p.amount_captured == 1500
    assert [e.type for e in p.events][-2:] == ["payment.captured", "payment.succeeded"]


def succeeded(amount: int = 2000) -> Payment:
    p = new_payment(amount=amount)
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=amount), NOW)
    return p


def test_partial_then_full_refund() -> None:
    p = succeeded()
    p.start_refund("re_1", 500, None, NOW)
    assert p.refundable == 1500  # the pending refund reserves its amount
    p.settle_refund("re_1", True, NOW)
    assert (p.status, p.amount_refunded) == (S.PARTIALLY_REFUNDED, 500)
    r2 = p.start_refund("re_2", None, None, NOW)
    assert r2.amount == 1500
    p.settle_refund("re_2", True, NOW)
    assert (p.status, p.amount_refunded) == (S.REFUNDED, 2000)
    with pytest.raises(RefundNotAllowed, match="already fully refunded"):
        p.start_refund("re_3", 1, None, NOW)


def test_refund_more_than_captured_is_refused() -> None:
    p = succeeded()
    with pytest.raises(RefundNotAllowed):
        p.start_refund("re_1", 2001, None, NOW)


def test_refund_of_an_unpaid_payment_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        new_payment().start_refund("re_1", 100, None, NOW)


def test_a_failed_refund_frees_its_amount() -> None:
    p = succeeded()
    p.start_refund("re_1", 2000, None, NOW)
    p.settle_refund("re_1", False, NOW, failure_reason="expired_or_canceled_card")
    assert p.refundable == 2000
    assert p.status == S.SUCCEEDED
    assert p.events[-1].type == "refund.failed"


outcomes = st.builds(
    PspOutcome,
    status=st.sampled_from(
        [
            S.PENDING,
            S.PROCESSING,
            S.REQUIRES_ACTION,
            S.REQUIRES_CAPTURE,
            S.SUCCEEDED,
            S.FAILED,
            S.CANCELED,
        ]
    ),
    connector_payment_id=st.just("pi_1"),
    amount_received=st.just(2000),
    failure=st.just(Failure("card_declined", "declined", False)),
)


@given(st.lists(outcomes, max_size=12))
def test_any_order_of_psp_outcomes_only_ever_moves_forward(seq: list[PspOutcome]) -> None:
    p = new_payment()
    history = [p.status]
    for outcome in seq:
        before = p.status
        changed = p.apply_psp_outcome(outcome, NOW)
        assert p.status == before or p.status in TRANSITIONS[before]
        if p.status != before:
            assert changed
            history.append(p.status)
    # a status never reappears once left
    assert len(history) == len(set(history))
    # one event per status reached through a PSP outcome (plus initiated / captured)
    moves = [e for e in p.events if e.type not in ("payment.initiated", "payment.captured")]
    assert len(moves) == len(history) - 1


@given(st.lists(st.tuples(st.integers(1, 3000), st.booleans()), max_size=10))
def test_refunds_never_exceed_what_was_captured(attempts: list[tuple[int, bool]]) -> None:
    p = succeeded(2000)
    for i, (amount, ok) in enumerate(attempts):
        try:
            p.start_refund(f"re_{i}", amount, None, NOW)
        except (RefundNotAllowed, InvalidTransition):
            continue
        p.settle_refund(f"re_{i}", ok, NOW)
        assert 0 <= p.amount_refunded <= p.amount_captured
        assert p.refundable >= 0
    settled = sum(r.amount for r in p.refunds if r.status == "succeeded")
    assert settled == p.amount_refunded
    assert (p.status == S.REFUNDED) == (p.amount_refunded == 2000)


def retryable_failure(p: Payment, ref: str = "pi_1") -> None:
    p.apply_psp_outcome(
        PspOutcome(S.FAILED, ref, failure=Failure("processing_error", "try again", retryable=True)),
        NOW,
    )


def test_a_retryable_failure_can_be_retried_as_a_new_attempt() -> None:
    p = new_payment()
    retryable_failure(p)
    p.retry(NOW, max_attempts=3)
    assert (p.status, p.attempt, p.connector_payment_id, p.failure) == (S.PENDING, 2, None, None)
    assert p.events[-1].type == "payment.retrying"
    # a late answer about the first attempt cannot fail the second
    retryable_failure(p, "pi_1")
    assert p.status == S.PENDING
    p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_2", amount_received=2000), NOW)
    assert (p.status, p.connector_payment_id) == (S.SUCCEEDED, "pi_2")


def test_retries_are_bounded_and_only_for_retryable_failures() -> None:
    p = new_payment()
    retryable_failure(p)
    p.retry(NOW, max_attempts=2)
    retryable_failure(p, "pi_2")
    with pytest.raises(InvalidTransition):
        p.retry(NOW, max_attempts=2)
    declined = new_payment()
    declined.apply_psp_outcome(
        PspOutcome(S.FAILED, "pi_9", failure=Failure("card_declined", "no", retryable=False)), NOW
    )
    with pytest.raises(InvalidTransition):
        declined.retry(NOW, max_attempts=5)
    with pytest.raises(InvalidTransition):
        new_payment().retry(NOW, max_attempts=5)


def test_an_outcome_about_another_psp_object_never_moves_the_payment() -> None:
    p = new_payment(capture_method="manual")
    p.apply_psp_outcome(PspOutcome(S.REQUIRES_CAPTURE, "pi_1", amount_capturable=2000), NOW)
    failure = Failure("card_declined", "no", retryable=False)
    assert not p.apply_psp_outcome(PspOutcome(S.FAILED, "pi_stranger", failure=failure), NOW)
    assert not p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_stranger"), NOW)
    assert (p.status, p.connector_payment_id, p.failure) == (S.REQUIRES_CAPTURE, "pi_1", None)
    assert p.apply_psp_outcome(PspOutcome(S.SUCCEEDED, "pi_1", amount_received=2000), NOW)


@pytest.mark.parametrize(
    ("capture_method", "decision", "status", "received", "capturable"),
    [
        ("automatic", "allow", S.SUCCEEDED, 2000, None),
        ("manual", "allow", S.REQUIRES_CAPTURE, None, 2000),
        ("automatic", "review", S.REQUIRES_CAPTURE, None, 2000),  # held: we asked for no capture
    ],
)
def test_an_authorisation_reported_without_its_capture_follows_what_we_asked(
    capture_method: str,
    decision: str,
    status: PaymentStatus,
    received: int | None,
    capturable: int | None,
) -> None:
    p = Payment.initiate(
        now=NOW,
        fraud=FraudAssessment(75, ("x",), decision),
        id="pay_1",
        merchant_id="m",
        amount=2000,
        currency="usd",
        customer_id="c",
        payment_method="pm",
        capture_method=capture_method,
        connector="adyen",
    )
    reported = PspOutcome(S.REQUIRES_CAPTURE, "PSP1", amount_capturable=2000)
    out = p.authorised_as_requested(reported)
    assert (out.status, out.connector_payment_id, out.amount_received, out.amount_capturable) == (
        status,
        "PSP1",
        received,
        capturable,
    )
    failed = PspOutcome(S.FAILED, "PSP1")
    assert p.authorised_as_requested(failed) is failed
