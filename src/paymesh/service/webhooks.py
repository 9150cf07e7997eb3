"""PSP webhooks in: verified by the connector, confirmed with the PSP where its signature is
not enough, applied only to the payment whose own PSP object they describe, de-duplicated by
PSP event id, and applied through the state machine.

The de-duplication mark and the payment change commit together, so a webhook is applied
exactly once even when the PSP sends it twice at the same moment. Order needs no queue: the
state machine only moves forward and refund totals only grow, so a late or reordered webhook
changes nothing it should not. A PSP that names each delivery (PayPal's transmission id) has
it marked too, in the same commit: a replayed transmission is a duplicate.

Ownership. A signature says the PSP sent the body, not whose payment its object is: anyone who
can make an object at the PSP (a buyer creating a PayPal order with our client id, say)
chooses its metadata, and so which of our payments the webhook names. An event changes a
payment only when

- the PSP object it describes is the payment's own: the payment is found by (PSP, the
  object's id), and any payment id its metadata names is that payment's; and
- its money is the payment's: the same currency, the same whole amount where the object
  states one, and no part (captured, capturable, refunded, disputed) larger than the payment;
- a dispute's verdict is about the dispute the payment holds (by the PSP's dispute id): the
  payment's own PSP object never closes another payment's dispute.

Anything else changes nothing, is logged at WARNING and answered "mismatch".

A payment with no PSP reference yet (the PSP's answer was lost in a crash, or is not stored
yet) is bound by no webhook, however well its amount and currency match. Binding it would let
a stranger's object of the same amount become the payment's, and the PSP's true answer would
then be refused as news about another object. Only the PSP's answer to our own request binds
it: the inline call, or the sync job, which sends the authorisation again with the same
idempotency key and so gets the original object back. Such a webhook is "unbound", logged at
INFO (a webhook racing our own answer is normal), and refused with a 409
`payment_not_ready`, so that the PSP delivers it again: by then our own answer is recorded and
the webhook applies (a dispute sent right after a capture is news that answer does not hold).
A dispute's verdict that overtakes the dispute's own notification is "unbound" the same way.

One word per event: applied, duplicate, unknown (no payment of ours), mismatch, unbound,
stale (about an attempt the payment gave up), unconfirmed (the PSP does not know the object).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime

from opentelemetry import trace
from opentelemetry.trace import Link, Span

from paymesh.domain.errors import InvalidTransition
from paymesh.domain.events import DomainEvent
from paymesh.domain.payment import Payment
from paymesh.domain.refund import RefundStatus
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import Connector, PspError, RefundUpdate, WebhookEvent
from paymesh.ports.store import AlreadyProcessed, Changeset, Store, VersionConflict
from paymesh.service.errors import PspUnavailable, StateConflict
from paymesh.service.payments.answers import AnswersInFlight
from paymesh.tracing import context_of, stamp, traced

log = logging.getLogger(__name__)

_WRITE_RETRIES = 8


class WebhookService:
    def __init__(
        self,
        store: Store,
        connectors: dict[str, Connector],
        clock: Callable[[], datetime],
        on_commit: Callable[[], None],
        on_processing: Callable[[Payment], None] = lambda p: None,
        answers: AnswersInFlight | None = None,
        answer_wait: float = 5.0,
    ) -> None:
        """`answers`: the PSP answers this process awaits (`PaymentService.answers`); a webhook
        that overtakes one waits up to `answer_wait` seconds for it before it is refused."""
        self.store = store
        self.connectors = connectors
        self.clock = clock
        self.on_commit = on_commit
        # A PSP that says "processing" may be waiting on us (PayPal: the buyer approved the
        # order, which moves no money until it is captured): ask it again at once.
        self.on_processing = on_processing
        self.answers = answers if answers is not None else AnswersInFlight()
        self.answer_wait = answer_wait

    async def receive(self, psp: str, headers: dict[str, str], body: bytes) -> list[str]:
        """Verify, confirm and apply; returns one word per event (see the module doc).

        Raises WebhookRejected (a 400: not the PSP's), or PspUnavailable when the PSP cannot
        confirm the event now (a 503: the PSP delivers it again later).
        """
        connector = self.connectors[psp]
        events = connector.parse_webhook(headers, body, self.clock())  # raises WebhookRejected
        if not events:
            return []
        results = [await self._confirm_and_apply(psp, connector, event) for event in events]
        if "unbound" in results:
            # Applied events are marked processed: the PSP's next delivery skips them.
            raise StateConflict(
                f"{psp} webhook about a payment whose {psp} answer is not "
                "recorded yet; deliver it again later",
                code="payment_not_ready",
            )
        return results

    async def _confirm_and_apply(self, psp: str, connector: Connector, event: WebhookEvent) -> str:
        try:
            confirmed = await connector.confirm(event)
        except PspError as exc:
            raise PspUnavailable(
                f"{psp} could not confirm webhook {event.psp_event_id!r}: "
                f"{exc.message}; deliver it again later",
                code="psp_unavailable",
            ) from exc
        if confirmed is None:
            log.warning(
                "webhook %r from %s: the PSP does not confirm the object it names; nothing changed",
                event.psp_event_id,
                psp,
            )
            return "unconfirmed"
        return await self.apply(psp, confirmed)

    async def _owner(
        self, psp: str, event: WebhookEvent, by_id: tuple[Payment | None] | None = None
    ) -> Payment | str:
        """The payment whose own PSP object the event describes, or the word for why none.
        `by_id`: what reading the payment the event names gave just now, if it was read."""
        ref, named = event.connector_payment_id, event.payment_id
        # A signed body is the PSP's, but its fields are still data: ids must be strings.
        if not isinstance(ref, str | None) or not isinstance(named, str | None):
            log.info(
                "webhook %r from %s names no payment we could look up", event.psp_event_id, psp
            )
            return "unknown"
        payment = await self.store.find_payment_by_connector_ref(psp, ref) if ref else None
        if payment is None:
            if by_id is not None:
                payment = by_id[0]
            else:
                payment = await self.store.get_payment(named) if named else None
            if (
                payment is not None
                and ref is not None
                and payment.connector == psp
                and payment.connector_payment_id == ref
            ):
                # The PSP's answer was committed between the two reads: it is its own.
                return self._checked_money(psp, event, payment)
            if payment is None:
                # Not ours (made outside paymesh) or not yet recorded: nothing to move.
                log.info("webhook %r from %s names no known payment", event.psp_event_id, psp)
                return "unknown"
            if ref is not None and ref in payment.retired_refs:
                log.info(
                    "webhook %r from %s is about %r, an attempt payment %s gave up on",
                    event.psp_event_id,
                    psp,
                    ref,
                    payment.id,
                )
                return "stale"
            if payment.connector != psp:
                return _mismatch(
                    psp, event, f"it names payment {payment.id}, which is at {payment.connector}"
                )
            if payment.connector_payment_id is not None or ref is None:
                return _mismatch(
                    psp,
                    event,
                    f"it names payment {payment.id}, whose PSP object "
                    f"is {payment.connector_payment_id!r}, not {ref!r}",
                )
            wrong_money = _money_mismatch(payment, event)
            if wrong_money:
                return _mismatch(psp, event, f"payment {payment.id}: {wrong_money}")
            log.info(
                "webhook %r from %s names payment %s, which has no PSP reference yet: "
                "only the PSP's answer to our own request binds one",
                event.psp_event_id,
                psp,
                payment.id,
            )
            return "unbound"
        if named and named != payment.id:
            return _mismatch(
                psp,
                event,
                f"it names payment {named!r}, but its PSP object {ref!r} is payment {payment.id}'s",
            )
        return self._checked_money(psp, event, payment)

    async def _named_and_bound(
        self, psp: str, event: WebhookEvent, named: str | None, seen: asyncio.Event | None
    ) -> tuple[Payment | str | None, bool, tuple[Payment | None] | None]:
        """The payment the event names, read by its id, when its PSP object is the one the
        event describes; None when `_owner` must decide. Then whether an answer was awaited,
        and what the last read by id gave (None: no read), which `_owner` need not repeat.

        The usual webhook names our payment and is about the PSP object bound to it: one read
        here where `_owner` takes two (by PSP reference, which finds nothing while the webhook
        has overtaken our own answer, then by id), and a third after waiting for the answer.
        What it finds is what `_owner` finds: the payment bound to this PSP object (should
        two ever share it, the one the PSP's own event names). Anything else (bound to
        another object, at another PSP, still unbound after the wait, not found) goes to
        `_owner`, which tells a stale attempt, a mismatch and an unbound payment apart."""
        ref = event.connector_payment_id
        if named is None or not isinstance(ref, str):
            return None, False, None
        payment = await self.store.get_payment(named)
        waited = False
        if (
            payment is not None
            and payment.connector == psp
            and payment.connector_payment_id is None
        ):
            # It overtook our own request's answer: wait for it here, if this process is
            # the one recording it, then read the payment again.
            waited = True
            if not await self.answers.recorded(named, self.answer_wait, seen):
                return None, waited, (payment,)
            payment = await self.store.get_payment(named)
        if payment is None or payment.connector != psp or payment.connector_payment_id != ref:
            return None, waited, (payment,)
        return self._checked_money(psp, event, payment), waited, (payment,)

    @staticmethod
    def _checked_money(psp: str, event: WebhookEvent, payment: Payment) -> Payment | str:
        wrong_money = _money_mismatch(payment, event)
        if wrong_money:
            return _mismatch(psp, event, f"payment {payment.id}: {wrong_money}")
        return payment

    async def apply(self, psp: str, event: WebhookEvent) -> str:
        # Taken before the read: an answer that commits between the read and the wait has
        # already left the registry, and without this the webhook would get a needless 409.
        named = event.payment_id if isinstance(event.payment_id, str) else None
        seen = self.answers.seen(named) if named is not None else None
        found, waited, by_id = await self._named_and_bound(psp, event, named, seen)
        if found is None:
            found = await self._owner(psp, event, by_id)
            if (
                found == "unbound"
                and named is not None
                and not waited
                and await self.answers.recorded(named, self.answer_wait, seen)
            ):
                # It overtook our own request's answer, which this process has now recorded.
                found = await self._owner(psp, event)
        if isinstance(found, str):
            return found
        with await self._in_payment_trace(psp, event, found) as span:
            result = await self._apply(psp, event, found)
            span.set_attribute("paymesh.webhook.result", result)
            return result

    async def _in_payment_trace(
        self, psp: str, event: WebhookEvent, payment: Payment
    ) -> AbstractContextManager[Span]:
        """The span a webhook is applied in, in the payment's own trace.

        The PSP's request starts a trace of its own (a PSP sends no traceparent of ours), yet
        the webhook is the answer to the payment's PSP call. So the span's parent is the
        context recorded with the payment's latest event that has one (the work that last
        changed it: usually the request whose PSP call this answers), and it links to the
        webhook request's span. The events it records, and their deliveries, stay in the
        payment's trace. The timeline is read only when this process records spans."""
        request = trace.get_current_span()
        parent = None
        if request.is_recording():
            timeline = await self.store.events_for_payment(payment.merchant_id, payment.id)
            parent = next(
                (ctx for e in reversed(timeline) if (ctx := context_of(e.envelope)) is not None),
                None,
            )
        return traced(
            f"webhook {psp}",
            context=parent,  # None: the webhook request's span, a payment not yet traced
            links=[Link(request.get_span_context())] if parent is not None else (),
            attributes={
                "paymesh.psp": psp,
                "paymesh.payment_id": payment.id,
                "paymesh.webhook.event_id": event.psp_event_id,
            },
        )

    async def _apply(self, psp: str, event: WebhookEvent, payment: Payment) -> str:
        for attempt in range(_WRITE_RETRIES):
            if attempt:  # a lost race: read the payment again, and whose it is
                found = await self._owner(psp, event)
                if isinstance(found, str):
                    return found
                payment = found
            now = self.clock()
            changed = False
            if event.outcome is not None:
                outcome = (
                    payment.authorised_as_requested(event.outcome)
                    if event.capture_as_requested
                    else event.outcome
                )
                changed |= payment.apply_psp_outcome(outcome, now)
            if event.amount_refunded is not None:
                changed |= _settle_refunds(payment, event, now)
            if event.refund is not None:
                changed |= _settle_one_refund(payment, event.refund, now)
            if event.dispute is not None:
                dispute_id, amount, reason = event.dispute
                changed |= payment.open_dispute(dispute_id, amount, reason, now)
            if event.dispute_closed is not None:
                dispute_id, won = event.dispute_closed
                if payment.dispute is None and not changed:
                    # The verdict overtook the dispute's own notification: refused with a
                    # 409 like an unbound webhook, so the PSP delivers it again, by when the
                    # dispute is recorded (a verdict on another dispute is still a mismatch).
                    log.info(
                        "webhook %r from %s closes dispute %r of payment %s, not opened yet",
                        event.psp_event_id,
                        psp,
                        dispute_id,
                        payment.id,
                    )
                    return "unbound"
                try:
                    changed |= payment.close_dispute(dispute_id, won, now)
                except InvalidTransition:
                    return _mismatch(
                        psp, event, f"payment {payment.id} holds no dispute {dispute_id!r}"
                    )
            marks = [(f"webhook:{psp}", event.psp_event_id)]
            if event.transmission_id:
                # In the same commit as the change, never before it: a delivery that fails
                # (the PSP could not confirm, the process died) must still apply when the
                # PSP delivers it again, whatever transmission id it then carries.
                marks.append((f"webhook-transmission:{psp}", event.transmission_id))
            changes = Changeset(processed=marks)
            if changed:  # a webhook that tells us nothing new must not race real writes
                changes.save(payment)
                changes.events[:] = caused_by(changes.events, event.psp_event_id)
            stamp(changes.events)
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


def caused_by(events: list[DomainEvent], psp_event_id: str) -> list[DomainEvent]:
    """`events`, each naming the PSP notification that caused it (`psp_event_id` in its
    detail, as a Stripe event names its request): a payment's timeline then tells which
    change came from the PSP's webhook and which from our own call."""
    return [replace(e, detail={**e.detail, "psp_event_id": psp_event_id}) for e in events]


def _mismatch(psp: str, event: WebhookEvent, why: str) -> str:
    # Ids and amounts only: a webhook body may carry card or customer data, never logged.
    log.warning(
        "webhook %r from %s is not about the payment it names, nothing changed: %s",
        event.psp_event_id,
        psp,
        why,
    )
    return "mismatch"


def _money_mismatch(payment: Payment, event: WebhookEvent) -> str | None:
    """Why the event's money is not the payment's, or None if it is."""
    currency = event.currency
    if not isinstance(currency, str) or currency.lower() != payment.currency.lower():
        return f"currency {currency!r} is not the payment's {payment.currency!r}"
    if event.amount is not None and event.amount != payment.amount:
        return f"amount {event.amount!r} is not the payment's {payment.amount}"
    parts: list[object] = [event.amount_refunded]
    if event.outcome is not None:
        parts += [event.outcome.amount_received, event.outcome.amount_capturable]
    if event.refund is not None:
        parts.append(event.refund.amount)
    if event.dispute is not None:
        parts.append(event.dispute[1])
    for part in parts:
        if part is not None and (not isinstance(part, int) or not 0 <= part <= payment.amount):
            return f"a part of {part!r} does not fit in the payment's {payment.amount}"
    return None


def _settle_one_refund(payment: Payment, update: RefundUpdate, now: datetime) -> bool:
    """Settle the refund the PSP names, by our id or its own; an unknown refund changes nothing."""
    for refund in payment.refunds:
        if (update.refund_id and refund.id == update.refund_id) or (
            update.connector_refund_id and refund.connector_refund_id == update.connector_refund_id
        ):
            return payment.settle_refund(
                refund.id, update.succeeded, now, update.connector_refund_id, update.failure_reason
            )
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
