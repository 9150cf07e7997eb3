"""The payment aggregate.

A method checks the transition table, changes state and appends an event, or raises; it never
does I/O. The service layer decides what to ask a PSP and feeds the answer back here as a
`PspOutcome`, which may arrive twice or late (webhooks): applying it is idempotent and never
moves a payment backwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from paymesh.domain.dispute import Dispute, DisputeStatus, dispute_id_for
from paymesh.domain.errors import InvalidTransition, RefundNotAllowed
from paymesh.domain.events import DomainEvent
from paymesh.domain.ledger import Move, Movement
from paymesh.domain.refund import Refund, RefundStatus
from paymesh.domain.review import (
    CAPTURED_AT_PSP,
    FAILED_AT_PSP,
    Review,
    ReviewStatus,
    review_id_for,
)
from paymesh.domain.status import CAPTURED, PaymentStatus, can_move

S = PaymentStatus


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    retryable: bool
    decline_code: str | None = None


@dataclass(frozen=True, slots=True)
class FraudAssessment:
    score: int
    factors: tuple[str, ...]
    decision: str  # allow | review | block
    #: The learned model that scored it (its version), None when only the rules did: kept per
    #: payment so that a drift in scores can be told apart from a change of model.
    model: str | None = None


@dataclass(frozen=True, slots=True)
class PspOutcome:
    """What a PSP says about a payment, from an API answer, a sync or a webhook."""

    status: PaymentStatus
    connector_payment_id: str | None = None
    amount_capturable: int | None = None
    amount_received: int | None = None
    failure: Failure | None = None
    next_action: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class RiskContext:
    device_id: str | None = None
    ip_address: str | None = None
    country: str | None = None
    city: str | None = None


@dataclass(frozen=True, slots=True)
class PspAttempt:
    """An authorisation a PSP did not take, and why; the payment then went to the next."""

    connector: str
    reason: str
    at: datetime


@dataclass(slots=True)
class Routing:
    """How the payment was routed: the route that chose its PSP, and the PSPs left to fail
    over to, in order."""

    route: str
    fallbacks: list[str] = field(default_factory=list)
    retry_soft_declines: bool = False
    attempts: list[PspAttempt] = field(default_factory=list)


#: Where the customer's confirmations go, as given at creation (Stripe's `receipt_email`).
#: An address as HTML's email inputs accept it, with a dotted domain: nothing that could
#: break out of a mail header (no spaces, line breaks, angle brackets or commas).
RECEIPT_EMAIL_PATTERN = (
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+(?![\s\S])"
)
RECEIPT_EMAIL_MAX = 254  # RFC 5321's longest forward path, less its angle brackets
#: E.164: a plus, then 8 to 15 digits, the first not 0. Both patterns end in "nothing
#: follows", not `$`, which would let a trailing line break through.
RECEIPT_PHONE_PATTERN = r"^\+[1-9][0-9]{7,14}(?![\s\S])"


# The event that announces arrival in each status reached through a PSP outcome.
_STATUS_EVENTS = {
    S.PROCESSING: "payment.processing",
    S.REQUIRES_ACTION: "payment.requires_action",
    S.REQUIRES_CAPTURE: "payment.requires_capture",
    S.SUCCEEDED: "payment.succeeded",
    S.FAILED: "payment.failed",
    S.CANCELED: "payment.canceled",
}


@dataclass(slots=True)
class Payment:
    id: str
    merchant_id: str
    amount: int
    currency: str
    customer_id: str
    payment_method: str
    capture_method: str
    connector: str
    created_at: datetime
    updated_at: datetime
    status: PaymentStatus = S.PENDING
    amount_captured: int = 0
    amount_refunded: int = 0
    connector_payment_id: str | None = None
    next_action: dict[str, Any] | None = None
    failure: Failure | None = None
    fraud: FraudAssessment | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    risk: RiskContext = field(default_factory=RiskContext)
    attempt: int = 1
    refunds: list[Refund] = field(default_factory=list)
    dispute: Dispute | None = None
    review: Review | None = None
    routing: Routing | None = None
    #: PSP references of abandoned attempts: their late answers must not touch this one.
    retired_refs: list[str] = field(default_factory=list)
    #: The customer's confirmations go here; kept off the events (every event is delivered
    #: to merchants' endpoints, and an address does not belong in all of them).
    receipt_email: str | None = None
    receipt_phone: str | None = None
    #: Optimistic concurrency: the store writes only if the stored version is still this.
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    # -- creation -------------------------------------------------------------------------

    @classmethod
    def initiate(cls, *, now: datetime, fraud: FraudAssessment, **fields: Any) -> Payment:
        payment = cls(created_at=now, updated_at=now, fraud=fraud, **fields)
        payment._record(
            "payment.initiated",
            now,
            fraud_score=fraud.score,
            fraud_factors=list(fraud.factors),
            fraud_decision=fraud.decision,
            route=payment.routing.route if payment.routing else None,
        )
        return payment

    def block(self, now: datetime) -> None:
        self._move(S.BLOCKED, now, "block")
        self._record("payment.blocked", now, fraud_score=self.fraud.score if self.fraud else None)

    # -- PSP answers ----------------------------------------------------------------------

    def apply_psp_outcome(self, outcome: PspOutcome, now: datetime) -> bool:
        """Merge what the PSP said; move forward if the table allows. Returns True if changed.

        A stale or repeated outcome (the payment is already at or past it) changes nothing,
        so webhooks and API answers may race in any order.
        """
        if outcome.connector_payment_id in self.retired_refs:
            return False  # about an attempt given up on; the current one decides
        if (
            outcome.connector_payment_id
            and self.connector_payment_id
            and outcome.connector_payment_id != self.connector_payment_id
        ):
            return False  # about another PSP object: never news of this payment
        changed = False
        if outcome.connector_payment_id and not self.connector_payment_id:
            self.connector_payment_id = outcome.connector_payment_id
            changed = True
        target = outcome.status
        if target == self.status:
            if target == S.REQUIRES_ACTION and outcome.next_action != self.next_action:
                self.next_action = outcome.next_action
                changed = True
            if changed:
                self.updated_at = now
            return changed
        if not can_move(self.status, target):
            if changed:
                self.updated_at = now
            return changed
        held = self.status == S.REQUIRES_CAPTURE  # an authorisation hold is open
        self.status = target
        self.updated_at = now
        self.next_action = outcome.next_action if target == S.REQUIRES_ACTION else None
        if target == S.FAILED:
            self.failure = outcome.failure
        if target == S.SUCCEEDED:
            self.amount_captured = outcome.amount_received or self.amount
        extra: dict[str, Any] = {}
        if target == S.FAILED and outcome.failure:
            extra = {
                "retryable": outcome.failure.retryable,
                "failure_code": outcome.failure.code,
                "decline_code": outcome.failure.decline_code,
            }
        if target == S.SUCCEEDED and self.psp_capture_method == "manual":
            self._record("payment.captured", now, amount_captured=self.amount_captured)
        self._record(_STATUS_EVENTS[target], now, movements=self._moved(target, held), **extra)
        if target == S.CANCELED and self.review and self.review.status == ReviewStatus.OPEN:
            self.close_review(ReviewStatus.REJECTED, now)  # voided: nothing left to decide
        if target in (S.SUCCEEDED, S.FAILED):
            self._settled_past_review(target, now)
        if target == S.REQUIRES_CAPTURE and self.held_for_review:
            self.open_review(now, self._held_reason())
        return True

    def _moved(self, target: PaymentStatus, held: bool) -> tuple[Movement, ...]:
        """The money a move to `target` moves: an authorisation opens a hold on the card;
        a capture takes the money and, with the void or a failed capture, ends the hold."""
        release = (Movement(Move.RELEASE, self.amount),) if held else ()
        if target == S.REQUIRES_CAPTURE:
            return (Movement(Move.HOLD, self.amount),)
        if target == S.SUCCEEDED:
            return (*release, Movement(Move.CAPTURE, self.amount_captured))
        if target in (S.CANCELED, S.FAILED):
            return release
        return ()

    def authorised_as_requested(self, outcome: PspOutcome) -> PspOutcome:
        """An authorisation the PSP reports without a trusted word on its capture (Adyen's
        AUTHORISATION notification): the PSP did what we asked, and we asked for a capture
        at once unless this payment's capture is manual or held for review."""
        if outcome.status != S.REQUIRES_CAPTURE or self.psp_capture_method == "manual":
            return outcome
        return PspOutcome(
            status=S.SUCCEEDED,
            connector_payment_id=outcome.connector_payment_id,
            amount_received=outcome.amount_capturable,
        )

    # -- routing ----------------------------------------------------------------------------

    def can_fail_over(self) -> bool:
        return self.status == S.PENDING and bool(self.routing and self.routing.fallbacks)

    def fail_over(self, reason: str, now: datetime) -> bool:
        """Hand the authorisation to the next PSP of the route.

        Only for an attempt the PSP provably did not take (refused, unreachable, circuit
        open) or declined softly where the route allows another try: the caller decides
        that; here the payment only keeps the record straight. Returns False when no PSP
        is left.
        """
        if not self.can_fail_over():
            return False
        assert self.routing is not None
        if self.connector_payment_id:
            self.retired_refs.append(self.connector_payment_id)
            self.connector_payment_id = None
        previous = self.connector
        self.connector = self.routing.fallbacks.pop(0)
        self.routing.attempts.append(PspAttempt(previous, reason, now))
        self.updated_at = now
        self._record(
            "payment.failover",
            now,
            from_connector=previous,
            to_connector=self.connector,
            reason=reason,
        )
        return True

    # -- manual review ----------------------------------------------------------------------

    @property
    def held_for_review(self) -> bool:
        """Scored `review` inline: authorise only, and capture when a person approves."""
        return self.fraud is not None and self.fraud.decision == "review"

    @property
    def psp_capture_method(self) -> str:
        return "manual" if self.held_for_review else self.capture_method

    def open_review(self, now: datetime, reason: str) -> bool:
        """Hold an authorised payment for a person; False if one is open or it is too late."""
        if self.review is not None or self.status != S.REQUIRES_CAPTURE:
            return False
        self.review = Review(
            id=review_id_for(self.id), status=ReviewStatus.OPEN, opened_at=now, reason=reason
        )
        self.updated_at = now
        self._record(
            "review.opened",
            now,
            review_id=self.review.id,
            reason=reason,
            fraud_score=self.fraud.score if self.fraud else None,
        )
        return True

    def _held_reason(self) -> str:
        return (
            "fraud score " + ", ".join(self.fraud.factors)
            if self.fraud and self.fraud.factors
            else "fraud score"
        )

    def _settled_past_review(self, target: PaymentStatus, now: datetime) -> None:
        """The PSP captured (or failed) the payment while a person was to decide on it.

        No decision is left to make, and a review must never stay `open` on a settled
        payment; nor may it pass as approved or rejected when no one decided. It is closed
        with the reason, in a `review.closed` event the fraud team can route: money that
        moved past the hold (captured at the PSP's dashboard, or by a PSP that ignored the
        manual capture) is exactly what they must see. A payment held for review that the
        PSP captured before any review was opened gets one, closed the same way.
        """
        review = self.review
        if review is None:
            if target != S.SUCCEEDED or not self.held_for_review:
                return  # a decline held nothing: there was never anything to review
            review = self.review = Review(
                id=review_id_for(self.id),
                status=ReviewStatus.OPEN,
                opened_at=now,
                reason=self._held_reason(),
            )
        elif review.status != ReviewStatus.OPEN:
            return  # decided by a person first: that decision stands
        reason = CAPTURED_AT_PSP if target == S.SUCCEEDED else FAILED_AT_PSP
        review.status = ReviewStatus.CLOSED
        review.closed_at = now
        review.closed_reason = reason
        self._record(
            "review.closed",
            now,
            review_id=review.id,
            reason=reason,
            amount_captured=self.amount_captured if target == S.SUCCEEDED else None,
            fraud_score=self.fraud.score if self.fraud else None,
        )

    def close_review(self, decision: ReviewStatus, now: datetime, note: str | None = None) -> bool:
        """Record a reviewer's decision and their note; the same decision again changes
        nothing (the first note stands)."""
        review = self.review
        if review is None:
            raise InvalidTransition(self.id, "not under review", f"{decision.value} review of")
        if review.status == decision:
            return False
        if review.status != ReviewStatus.OPEN:
            raise InvalidTransition(
                self.id, f"review already {review.status.value}", f"{decision.value} review of"
            )
        review.status = decision
        review.closed_at = now
        review.note = note
        self.updated_at = now
        self._record(f"review.{decision.value}", now, review_id=review.id, note=note)
        return True

    def retry(self, now: datetime, max_attempts: int) -> None:
        """Start a new attempt after a retryable failure: back to pending, a new PSP key.

        The one move against the table, and only by this command: a failure the PSP says
        may pass later (an issuer hiccup, the PSP unreachable) is worth another try, and
        nothing was charged by the attempt that failed.
        """
        if self.status != S.FAILED or self.failure is None or not self.failure.retryable:
            raise InvalidTransition(self.id, self.status, "retry")
        if self.attempt >= max_attempts:
            raise InvalidTransition(
                self.id, f"{self.status} after {self.attempt} attempts", "retry"
            )
        if self.connector_payment_id:
            self.retired_refs.append(self.connector_payment_id)
        self.connector_payment_id = None
        self.attempt += 1
        self.status = S.PENDING
        self.failure = None
        self.updated_at = now
        self._record("payment.retrying", now, attempt=self.attempt)

    # -- commands checked before the PSP is asked -----------------------------------------

    def ensure_capturable(self, amount: int | None) -> int:
        if self.status != S.REQUIRES_CAPTURE:
            raise InvalidTransition(self.id, self.status, "capture")
        if self.review is not None and self.review.status == ReviewStatus.OPEN:
            # The hold is the point of the review: only its approval captures.
            raise InvalidTransition(self.id, "held for review (approve the review)", "capture")
        amount = self.amount if amount is None else amount
        if amount > self.amount:
            raise RefundNotAllowed(
                f"amount to capture ({amount}) is greater than the authorised {self.amount}",
                "amount",
            )
        return amount

    def ensure_cancelable(self) -> None:
        if not can_move(self.status, S.CANCELED):
            raise InvalidTransition(self.id, self.status, "cancel")

    # -- refunds --------------------------------------------------------------------------

    @property
    def refundable(self) -> int:
        """Captured money not yet refunded nor reserved by a refund in flight."""
        reserved = sum(r.amount for r in self.refunds if r.status == RefundStatus.PENDING)
        return self.amount_captured - self.amount_refunded - reserved

    def start_refund(
        self, refund_id: str, amount: int | None, reason: str | None, now: datetime
    ) -> Refund:
        if self.status not in CAPTURED or self.status == S.DISPUTED:
            raise InvalidTransition(self.id, self.status, "refund")
        available = self.refundable
        if available <= 0:
            raise RefundNotAllowed(f"payment {self.id} is already fully refunded", "amount")
        amount = available if amount is None else amount
        if amount <= 0 or amount > available:
            raise RefundNotAllowed(
                f"refund amount ({amount}) is greater than what is left to refund ({available})",
                "amount",
            )
        refund = Refund(
            id=refund_id,
            payment_id=self.id,
            merchant_id=self.merchant_id,
            amount=amount,
            currency=self.currency,
            reason=reason,
            created_at=now,
            updated_at=now,
        )
        self.refunds.append(refund)
        self.updated_at = now
        return refund

    def refund(self, refund_id: str) -> Refund:
        for r in self.refunds:
            if r.id == refund_id:
                return r
        raise KeyError(refund_id)

    def note_refund_reference(
        self, refund_id: str, connector_refund_id: str, now: datetime
    ) -> bool:
        """The PSP's id of a refund it accepted without a verdict (its webhook can name it)."""
        refund = self.refund(refund_id)
        if refund.connector_refund_id == connector_refund_id:
            return False
        refund.connector_refund_id = connector_refund_id
        refund.updated_at = now
        self.updated_at = now
        return True

    @property
    def oldest_pending_refund(self) -> datetime | None:
        pending = [r.created_at for r in self.refunds if r.status == RefundStatus.PENDING]
        return min(pending) if pending else None

    def settle_refund(
        self,
        refund_id: str,
        succeeded: bool,
        now: datetime,
        connector_refund_id: str | None = None,
        failure_reason: str | None = None,
    ) -> bool:
        """Record the PSP's verdict on a refund; a repeat verdict changes nothing."""
        refund = self.refund(refund_id)
        if refund.status != RefundStatus.PENDING:
            return False
        refund.connector_refund_id = connector_refund_id or refund.connector_refund_id
        refund.updated_at = now
        self.updated_at = now
        if not succeeded:
            refund.status = RefundStatus.FAILED
            refund.failure_reason = failure_reason
            self._record(
                "refund.failed",
                now,
                refund_id=refund.id,
                refund_amount=refund.amount,
                failure_reason=failure_reason,
            )
            return True
        refund.status = RefundStatus.SUCCEEDED
        self.amount_refunded += refund.amount
        target = (
            S.REFUNDED if self.amount_refunded >= self.amount_captured else S.PARTIALLY_REFUNDED
        )
        if target != self.status and can_move(self.status, target):
            self.status = target
        self._record(
            "refund.succeeded",
            now,
            movements=(Movement(Move.REFUND, refund.amount),),
            refund_id=refund.id,
            refund_amount=refund.amount,
        )
        return True

    # -- disputes -------------------------------------------------------------------------

    def open_dispute(
        self, connector_dispute_id: str, amount: int, reason: str | None, now: datetime
    ) -> bool:
        """The PSP took `amount` back for the customer; a repeat of it changes nothing.

        One dispute per payment (see `paymesh.domain.dispute`): once it has one, another
        opening is news of that one or of nothing.
        """
        if self.dispute is not None or not can_move(self.status, S.DISPUTED):
            return False
        self.dispute = Dispute(
            id=dispute_id_for(self.id),
            connector_dispute_id=connector_dispute_id,
            amount=amount,
            reason=reason,
            status=DisputeStatus.OPEN,
            opened_at=now,
        )
        self.status = S.DISPUTED
        self.updated_at = now
        self._record(
            "payment.dispute.created",
            now,
            movements=(Movement(Move.DISPUTE, amount),),
            **self._dispute_detail(),
            # For the fraud alert a dispute raises: how the payment scored when it was made.
            fraud_score=self.fraud.score if self.fraud else None,
        )
        return True

    def close_dispute(self, connector_dispute_id: str, won: bool, now: datetime) -> bool:
        """The bank decided. Won: the funds come back (the dispute fee does not) and the
        payment is captured again, in the status its refunds leave it in. Lost: it stays
        `disputed`, which is final, and nothing more moves: the money left when the dispute
        opened. A repeated or later verdict on a closed dispute changes nothing.

        Raises InvalidTransition for a dispute this payment does not hold.
        """
        dispute = self.dispute
        if dispute is None or dispute.connector_dispute_id != connector_dispute_id:
            raise InvalidTransition(
                self.id,
                f"{self.status.value}, without dispute {connector_dispute_id!r}",
                "close a dispute of",
            )
        if dispute.status != DisputeStatus.OPEN:
            return False
        dispute.status = DisputeStatus.WON if won else DisputeStatus.LOST
        dispute.closed_at = now
        self.updated_at = now
        movements: tuple[Movement, ...] = ()
        if won:
            self.status = self._captured_status()
            movements = (Movement(Move.DISPUTE_WON, dispute.amount),)
        self._record(
            "payment.dispute.closed",
            now,
            movements=movements,
            **self._dispute_detail(),
            outcome=dispute.status.value,
        )
        return True

    def _captured_status(self) -> PaymentStatus:
        """Where the money stands with the dispute gone: captured, less what was refunded."""
        if self.amount_refunded <= 0:
            return S.SUCCEEDED
        if self.amount_refunded < self.amount_captured:
            return S.PARTIALLY_REFUNDED
        return S.REFUNDED

    def _dispute_detail(self) -> dict[str, Any]:
        assert self.dispute is not None
        return {
            "dispute_id": self.dispute.id,
            "connector_dispute_id": self.dispute.connector_dispute_id,
            "dispute_amount": self.dispute.amount,
            "reason": self.dispute.reason,
        }

    # -- internals ------------------------------------------------------------------------

    def _move(self, target: PaymentStatus, now: datetime, action: str) -> None:
        if not can_move(self.status, target):
            raise InvalidTransition(self.id, self.status, action)
        self.status = target
        self.updated_at = now

    def _record(
        self,
        event_type: str,
        now: datetime,
        movements: tuple[Movement, ...] = (),
        **extra: Any,
    ) -> None:
        detail: dict[str, Any] = {
            "payment_id": self.id,
            "status": self.status.value,
            "amount": self.amount,
            "currency": self.currency,
            "customer_id": self.customer_id,
            "connector": self.connector,
            "attempt": self.attempt,
            "metadata": dict(self.metadata),
        }
        detail.update({k: v for k, v in extra.items() if v is not None})
        self.events.append(
            DomainEvent(
                type=event_type,
                payment_id=self.id,
                merchant_id=self.merchant_id,
                time=now,
                detail=detail,
                movements=movements,
            )
        )
