"""When an authorisation moves on to the next PSP of its route: one pure decision.

Failover is where a payment platform charges a customer twice: the first PSP took the money
but its answer was lost, and the second PSP is asked too. So a payment leaves a PSP only when
that PSP provably took nothing:

- its circuit is open and this is the first send (nothing was sent to it at all);
- it refused the first send without acting (connection refused, 429): a send that was never
  processed;
- it answered with a soft decline and the route lets another PSP try (a decline charged
  nothing).

Anything that may have reached the PSP — a timeout, a 5xx, a resend after a crash, any call
about a payment the PSP already knows — is ambiguous: the payment stays where it is and the
recovery job asks that PSP again with the same key, which can only find the one charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Attempt", "Next", "after_call", "before_call"]


class Next(Enum):
    RECORD = "record"  # apply the PSP's answer to the payment
    FAIL_OVER = "fail_over"  # hand the payment to the next PSP of its route
    FAIL = "fail"  # the PSP provably did nothing and no PSP is left: a failed payment
    LEAVE = "leave"  # ambiguous: keep the payment as it is, for recovery to ask again


@dataclass(frozen=True, slots=True)
class Attempt:
    """What is known after asking one PSP to authorise (or about) a payment."""

    #: The PSP answered with an outcome (any status), rather than failing to answer.
    answered: bool
    #: Answered: the outcome is a decline another PSP may retry (insufficient funds is not;
    #: "try again later" or a processor outage is).
    soft_decline: bool = False
    #: Not answered: the call may have reached the PSP (timeout, 5xx, a reset mid-request).
    outcome_unknown: bool = False
    #: Not answered: the error says waiting and asking again could help (refused, 429) as
    #: opposed to the PSP rejecting the request itself.
    retryable: bool = True
    #: No earlier send of this authorisation can have reached the PSP (not a resend after a
    #: crash or a lost answer).
    first_send: bool = True
    #: The payment already has this PSP's reference: the PSP knows it.
    known_to_psp: bool = False
    #: A next PSP is on the route and the payment is still pending.
    can_fail_over: bool = False
    #: The route allows another PSP to try after a soft decline.
    route_retries_soft_declines: bool = False


def before_call(*, first_send: bool, can_fail_over: bool, circuit_open: bool) -> bool:
    """True: skip this PSP for the next one without calling it. Only on a first send (a
    resend must go to the PSP that may already hold the payment) and when one is left."""
    return circuit_open and first_send and can_fail_over


def after_call(a: Attempt) -> Next:
    """What the payment does with one PSP's answer, or with its failure to answer."""
    if a.answered:
        if a.soft_decline and a.route_retries_soft_declines and a.can_fail_over:
            return Next.FAIL_OVER
        return Next.RECORD
    if a.outcome_unknown or not a.first_send or a.known_to_psp:
        return Next.LEAVE
    # The PSP provably did not act on the only send there was.
    if a.retryable and a.can_fail_over:
        return Next.FAIL_OVER
    return Next.FAIL
