"""The failover decision (domain/failover.py): properties that keep one payment at one PSP's
charge, over every combination of what can be known after asking a PSP."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain.failover import Attempt, Next, after_call, before_call

attempts = st.builds(
    Attempt,
    answered=st.booleans(),
    soft_decline=st.booleans(),
    outcome_unknown=st.booleans(),
    retryable=st.booleans(),
    first_send=st.booleans(),
    known_to_psp=st.booleans(),
    can_fail_over=st.booleans(),
    route_retries_soft_declines=st.booleans(),
)


@given(attempts)
def test_never_a_second_psp_after_an_ambiguous_call(a: Attempt) -> None:
    """Unknown outcome, a resend, or a PSP that already knows the payment: the money may be
    there, so the payment never moves on (and is never failed) without an answer."""
    ambiguous = not a.answered and (a.outcome_unknown or not a.first_send or a.known_to_psp)
    if ambiguous:
        assert after_call(a) == Next.LEAVE


@given(attempts)
def test_an_answer_moves_on_only_as_a_soft_decline_the_route_allows(a: Attempt) -> None:
    """An answered authorisation (succeeded, held, processing, a hard decline) is recorded:
    only a soft decline, which charged nothing, may go to the next PSP."""
    if a.answered:
        expected = (
            Next.FAIL_OVER
            if (a.soft_decline and a.route_retries_soft_declines and a.can_fail_over)
            else Next.RECORD
        )
        assert after_call(a) == expected


@given(attempts)
def test_no_failover_without_a_next_psp(a: Attempt) -> None:
    if not a.can_fail_over:
        assert after_call(a) != Next.FAIL_OVER


@given(attempts)
def test_a_payment_fails_only_when_the_psp_provably_did_nothing(a: Attempt) -> None:
    if after_call(a) == Next.FAIL:
        assert not a.answered and not a.outcome_unknown and a.first_send
        assert not a.known_to_psp
        assert not (a.retryable and a.can_fail_over)  # else it would have moved on


@given(attempts)
def test_recording_happens_exactly_for_answers_kept_at_this_psp(a: Attempt) -> None:
    assert (after_call(a) == Next.RECORD) == (
        a.answered and not (a.soft_decline and a.route_retries_soft_declines and a.can_fail_over)
    )


@given(st.booleans(), st.booleans(), st.booleans())
def test_an_open_circuit_is_skipped_only_on_a_first_send_with_a_psp_left(
    first_send: bool, can_fail_over: bool, circuit_open: bool
) -> None:
    skip = before_call(
        first_send=first_send, can_fail_over=can_fail_over, circuit_open=circuit_open
    )
    assert skip == (circuit_open and first_send and can_fail_over)


def test_a_refused_first_send_fails_over_and_a_timeout_does_not() -> None:
    refused = Attempt(answered=False, retryable=True, can_fail_over=True)
    timed_out = Attempt(answered=False, outcome_unknown=True, can_fail_over=True)
    rejected = Attempt(answered=False, retryable=False, can_fail_over=True)
    assert (after_call(refused), after_call(timed_out), after_call(rejected)) == (
        Next.FAIL_OVER,
        Next.LEAVE,
        Next.FAIL,
    )
