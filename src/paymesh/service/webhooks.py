"""PSP webhooks in: verified by the connector, de-duplicated by PSP event id, applied through
the state machine.

The de-duplication mark and the payment change commit together, so a webhook is applied
exactly once even when the PSP sends it twice at the same moment. Order needs no queue: the
state machine only moves forward and refund totals only grow, so a late or reordered webhook
changes nothing it should not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from paymesh.domain.payment import Payment
from paymesh.domain.refund import RefundStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import Connector, RefundUpdate, WebhookEvent
from paymesh.ports.store import AlreadyProcessed, Changeset, Store, VersionConflict

log = logging.getLogger(__name__)

_WRITE_RETRIES = 8


class WebhookService:
    def __init__(self, store: Store, connectors: dict[str, Connector],
                 clock: Callable[[], datetime], on_commit: Callable[[], None],
                 on_processing: Callable[[Payment], None] = lambda p: None) -> None:
        self.store = store
        self.connectors = connectors
        self.clock = clock
        self.on_commit = on_commit
        # A PSP that says "processing" may be waiting on us (PayPal: the buyer approved the
        # order, which moves no money until it is captured): ask it again at once.
        self.on_processing = on_processing

    async def receive(self, psp: str, headers: dict[str, str], body: bytes) -> list[str]:
        """Verify and apply; returns one word per event (applied/duplicate/unknown)."""
        connector = self.connectors[psp]
        events = connector.parse_webhook(headers, body, self.clock())  # raises WebhookRejected
        return [await self.apply(psp, event) for event in events]

    async def _find(self, psp: str, event: WebhookEvent) -> Payment | None:
        # A signed body is the PSP's, but its fields are still data: ids must be strings.
        if not isinstance(event.payment_id, str | None) or \
                not isinstance(event.connector_payment_id, str | None):
            return None
        if event.payment_id:
            payment = await self.store.get_payment(event.payment_id)
            if payment is not None and payment.connector == psp:
                return payment
        if event.connector_payment_id:
            return await self.store.find_payment_by_connector_ref(psp, event.connector_payment_id)
        return None

    async def apply(self, psp: str, event: WebhookEvent) -> str:
        for _ in range(_WRITE_RETRIES):
            payment = await self._find(psp, event)
            if payment is None:
                # Not ours (made outside paymesh) or not yet recorded: nothing to move.
                log.info("webhook %s from %s names no known payment", event.psp_event_id, psp)
                return "unknown"
            now = self.clock()
            changed = False
            if event.outcome is not None:
                changed |= payment.apply_psp_outcome(event.outcome, now)
            if event.amount_refunded is not None:
                changed |= _settle_refunds(payment, event, now)
            if event.refund is not None:
                changed |= _settle_one_refund(payment, event.refund, now)
            if event.dispute is not None:
                dispute_id, amount, reason = event.dispute
                changed |= payment.open_dispute(dispute_id, amount, reason, now)
            changes = Changeset(processed=[(f"webhook:{psp}", event.psp_event_id)])
            if changed:  # a webhook that tells us nothing new must not race real writes
                changes.save(payment)
            try:
                await self.store.commit(changes)
            except AlreadyProcessed:
                return "duplicate"
            except VersionConflict:
                continue
            changes.committed()
            if changes.events:
                self.on_commit()
            if changed and payment.status == PaymentStatus.PROCESSING:
                self.on_processing(payment)
            return "applied"
        raise RuntimeError(f"webhook {event.psp_event_id}: too many concurrent writers")


def _settle_one_refund(payment: Payment, update: RefundUpdate, now: datetime) -> bool:
    """Settle the refund the PSP names, by our id or its own; an unknown refund changes nothing."""
    for refund in payment.refunds:
        if (update.refund_id and refund.id == update.refund_id) or (
                update.connector_refund_id
                and refund.connector_refund_id == update.connector_refund_id):
            return payment.settle_refund(refund.id, update.succeeded, now,
                                         update.connector_refund_id, update.failure_reason)
    return False


def _settle_refunds(payment: Payment, event: WebhookEvent, now: datetime) -> bool:
    """Settle pending refunds the PSP's cumulative refunded total now covers, oldest first."""
    assert event.amount_refunded is not None
    # After a partial capture the PSP counts the released remainder as refunded too.
    released = payment.amount - payment.amount_captured if payment.amount_captured else 0
    covered = event.amount_refunded - released - payment.amount_refunded
    changed = False
    for refund in sorted(payment.refunds, key=lambda r: r.created_at):
        if refund.status != RefundStatus.PENDING:
            continue
        known = refund.connector_refund_id in event.connector_refund_ids
        if known or refund.amount <= covered:
            covered -= refund.amount
            changed |= payment.settle_refund(refund.id, True, now)
    return changed
