"""The manual review queue: list, approve (capture the held authorisation), reject (void it).

Both decisions are idempotent by state: a second approve of an approved review answers the
same review and asks the PSP nothing; approving a rejected review (or the reverse) is a 409,
and so is either decision on a review the PSP closed by settling the payment first (a capture
made at the PSP): no one may capture or void it again through the review.
The PSP is asked with the payment's own capture/cancel key, so two approvals racing still
make one capture at the PSP, and the decision commits together with the PSP's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from paymesh.domain.payment import Payment
from paymesh.domain.review import CAPTURED_AT_PSP, FAILED_AT_PSP, ReviewStatus, payment_id_for
from paymesh.domain.status import CAPTURED, PaymentStatus
from paymesh.ports.store import PaymentQuery, PaymentStore
from paymesh.ports.workflows import NoWorkflow, ReviewWorkflow
from paymesh.service.errors import NotFound, StateConflict
from paymesh.service.payments.psp_caller import PspCaller, psp_key
from paymesh.service.payments.unit_of_work import PaymentWrites
from paymesh.service.views import Reply, review_view


class ReviewService:
    def __init__(
        self,
        store: PaymentStore,
        psp: PspCaller,
        writes: PaymentWrites,
        clock: Callable[[], datetime],
        workflow: ReviewWorkflow | None = None,
    ) -> None:
        self.store = store
        self.psp = psp
        self.writes = writes
        self.clock = clock
        self.workflow: ReviewWorkflow = workflow if workflow is not None else NoWorkflow()

    async def list(
        self, merchant_id: str, status: ReviewStatus | None, limit: int, starting_after: str | None
    ) -> tuple[list[Payment], bool]:
        after = payment_id_for(starting_after) if starting_after else None
        if starting_after and after is None:
            return [], False
        return await self.store.list_payments(
            PaymentQuery(
                merchant_id=merchant_id,
                under_review=True,
                review_status=status,
                limit=limit,
                starting_after=after,
            )
        )

    async def _load(self, merchant_id: str, review_id: str) -> Payment:
        payment_id = payment_id_for(review_id)
        payment = (
            None if payment_id is None else await self.store.get_payment(payment_id, merchant_id)
        )
        if payment is None or payment.review is None:
            raise NotFound(f"no such review: {review_id!r}", param="id")
        return payment

    async def get(self, merchant_id: str, review_id: str) -> Reply:
        return Reply.of(200, review_view(await self._load(merchant_id, review_id)))

    async def approve(self, merchant_id: str, review_id: str, note: str | None = None) -> Reply:
        return await self._decide(merchant_id, review_id, ReviewStatus.APPROVED, note)

    async def reject(self, merchant_id: str, review_id: str, note: str | None = None) -> Reply:
        return await self._decide(merchant_id, review_id, ReviewStatus.REJECTED, note)

    async def _decide(
        self, merchant_id: str, review_id: str, decision: ReviewStatus, note: str | None
    ) -> Reply:
        payment = await self._load(merchant_id, review_id)
        review = payment.review
        assert review is not None
        if review.status == decision:
            # Told again: a crash may have come between the commit and the telling.
            await self.workflow.decided(payment.id, decision.value)
            return Reply.of(200, review_view(payment))
        if review.status != ReviewStatus.OPEN:
            raise _closed(review_id, payment)
        if payment.status != PaymentStatus.REQUIRES_CAPTURE or not payment.connector_payment_id:
            raise StateConflict(
                f"payment {payment.id} is {payment.status.value}; nothing to "
                f"{'capture' if decision == ReviewStatus.APPROVED else 'void'}",
                code="payment_unexpected_state",
            )
        connector = self.psp.connector_for(payment)
        ref = payment.connector_payment_id
        if decision == ReviewStatus.APPROVED:
            amount = payment.amount
            outcome = await self.psp.answer_or_error(
                connector.name,
                lambda: connector.capture(
                    ref, amount, psp_key(payment.id, "capture"), currency=payment.currency
                ),
            )
        else:
            outcome = await self.psp.answer_or_error(
                connector.name, lambda: connector.cancel(ref, psp_key(payment.id, "cancel"))
            )
        now = self.clock()

        def decide(p: Payment) -> None:
            if p.review is not None and p.review.status == ReviewStatus.CLOSED:
                # The PSP's own capture landed (by webhook) while we asked: its answer to
                # ours was that same capture, and no one decided this review.
                raise _closed(review_id, p)
            if p.review is not None and p.review.status == ReviewStatus.OPEN:
                p.close_review(decision, now, note)
            p.apply_psp_outcome(outcome, now)

        payment = await self.writes.settle(payment, decide)
        await self.workflow.decided(payment.id, decision.value)
        return Reply.of(200, review_view(payment))


_SETTLED_AT_PSP = {
    CAPTURED_AT_PSP: "the payment was captured at the PSP",
    FAILED_AT_PSP: "the payment failed at the PSP",
}


def _closed(review_id: str, payment: Payment) -> StateConflict:
    review = payment.review
    assert review is not None
    if review.status != ReviewStatus.CLOSED:
        return StateConflict(
            f"review {review_id} is already {review.status.value}", code="review_closed"
        )
    # The payment's status says the same as the reason, for a store that did not keep it.
    why = (
        _SETTLED_AT_PSP.get(review.closed_reason or "")
        or _SETTLED_AT_PSP[CAPTURED_AT_PSP if payment.status in CAPTURED else FAILED_AT_PSP]
    )
    return StateConflict(
        f"review {review_id} is closed: {why} before anyone decided (payment "
        f"{payment.id} is {payment.status.value}); there is nothing left to "
        "approve or reject",
        code="review_closed",
    )
