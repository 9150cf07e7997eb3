"""Customer confirmations: one message per payment outcome and channel, never sent twice.

The outcomes confirmed are `payment.succeeded`, `payment.failed` and `refund.succeeded`; the
channels are the payment's `receipt_email` and `receipt_phone`. Each channel of an outcome
goes through three steps, in this order, because a message cannot be taken back:

    1. look     a notification for (this event, this channel) is recorded: already sent, done
    2. send     under the outcome's identity: Message-ID `<event-id@paymesh>`, SMS
                idempotency token the event id
    3. record   the consumer mark (`send_confirmation:<channel>`, event id) with the
                notification, in one commit

A retry or a redelivery after step 3 stops at step 1. A crash between 2 and 3 sends once more
at most, under the same identity, so the mail client or Twilio drops the repeat; two
deliveries racing both send, and the second's commit is refused by the mark.

A transient failure (`SendLater`) is the bus's to retry with backoff; a permanent one
(`Undeliverable`, or a broken template) goes to the dead letters at once. A channel already
sent is not sent again when another fails. With no address nor number, nothing is sent and
that is recorded (channel `none`); an address with no sender configured is recorded as
`email_unsent` / `sms_unsent`, and logged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from paymesh.domain.money import format_amount
from paymesh.domain.payment import Payment
from paymesh.ports.bus import Delivery
from paymesh.ports.notifier import (
    EmailMessage,
    EmailSender,
    NotSent,
    Rendered,
    SmsMessage,
    SmsSender,
    TemplateBroken,
    Templates,
)
from paymesh.ports.store import AlreadyProcessed, Changeset, Notification, Store
from paymesh.service import ids
from paymesh.service.bus import TargetFailed

log = logging.getLogger(__name__)

#: The outcomes a customer is told of, and the template of each.
OUTCOMES = {
    "payment.succeeded": "payment_succeeded",
    "payment.failed": "payment_failed",
    "refund.succeeded": "refund_succeeded",
}
CONSUMER = "send_confirmation"


def message_id(event_id: str) -> str:
    """The Message-ID of an outcome's email: every send of it carries the same one."""
    return f"<{event_id}@paymesh>"


def facts(payment: Payment, detail: dict[str, Any]) -> dict[str, Any]:
    """What a template may say: amounts formatted in the currency's minor unit."""
    refund_amount = detail.get("refund_amount")
    return {
        "payment_id": payment.id,
        "merchant_id": payment.merchant_id,
        "customer_id": payment.customer_id,
        "amount": format_amount(payment.amount, payment.currency),
        "amount_minor": payment.amount,
        "currency": payment.currency.upper(),
        "status": payment.status.value,
        "description": payment.description,
        "order_id": payment.metadata.get("order_id"),
        "failure_message": payment.failure.message if payment.failure else None,
        "refund_id": detail.get("refund_id"),
        "refund_amount": format_amount(refund_amount, payment.currency)
        if isinstance(refund_amount, int)
        else None,
    }


class Confirmations:
    """The `send_confirmation` built-in target. `email`/`sms` None: that channel has no
    sender configured. `after_send` runs after each message is sent and before it is
    recorded (the crash test's hook; nothing else sets it)."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        templates: Templates,
        email: EmailSender | None = None,
        sms: SmsSender | None = None,
        after_send: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.templates = templates
        self.email = email
        self.sms = sms
        self.after_send = after_send

    async def __call__(self, event: dict[str, Any], delivery: Delivery) -> None:
        template = OUTCOMES.get(event["detail-type"])
        if template is None:
            log.info("send_confirmation: %s is not an outcome a customer is told of", event["id"])
            return
        merchant, detail = event["account"], event["detail"]
        payment = await self.store.get_payment(detail["payment_id"], merchant)
        if payment is None:
            log.warning("send_confirmation: payment of event %s is gone", event["id"])
            return
        channels = self._channels(payment)
        recorded = await self.store.notifications_for_payment(merchant, payment.id)
        done = {n.channel.split("_")[0] for n in recorded if n.event_id == event["id"]}
        todo = [(channel, to) for channel, to in channels if channel.split("_")[0] not in done]
        if not todo:
            return
        # Rendered only if some channel sends: a confirmation with no recipient, or none
        # configured to send by, is recorded as such, and a template has nothing to say there.
        rendered = (
            self._render(merchant, template, payment, detail)
            if any(self._sends(channel, to) for channel, to in todo)
            else None
        )
        failures: list[NotSent] = []
        for channel, to in todo:
            try:
                await self._send(channel, to, rendered, event["id"])
            except NotSent as exc:
                log.warning(
                    "confirmation %s of payment %s by %s not sent: %s",
                    template,
                    payment.id,
                    channel,
                    exc.reason,
                )
                failures.append(exc)
                continue
            await self._record(event, payment, channel, to or payment.customer_id, template)
        if failures:
            retryable = [f for f in failures if f.retryable]
            first = (retryable or failures)[0]
            raise TargetFailed(first.reason, permanent=not retryable) from first

    def _channels(self, payment: Payment) -> list[tuple[str, str | None]]:
        channels: list[tuple[str, str | None]] = []
        if payment.receipt_email:
            channels.append(("email" if self.email else "email_unsent", payment.receipt_email))
        if payment.receipt_phone:
            channels.append(("sms" if self.sms else "sms_unsent", payment.receipt_phone))
        return channels or [("none", None)]

    def _render(
        self, merchant: str, template: str, payment: Payment, detail: dict[str, Any]
    ) -> Rendered:
        try:
            return self.templates.render(merchant, template, facts(payment, detail))
        except TemplateBroken as exc:
            log.error("send_confirmation: %s", exc)
            raise TargetFailed("confirmation template broken", permanent=True) from exc

    def _sends(self, channel: str, to: str | None) -> bool:
        return bool(to) and (
            (channel == "email" and bool(self.email)) or (channel == "sms" and bool(self.sms))
        )

    async def _send(
        self, channel: str, to: str | None, rendered: Rendered | None, event_id: str
    ) -> None:
        if not self._sends(channel, to):
            if channel != "none":
                log.warning("confirmation by %s recorded, not sent: no sender configured", channel)
            return
        assert rendered is not None and to is not None  # rendered whenever a channel sends
        if channel == "email" and self.email:
            await self.email.send(
                EmailMessage(
                    to=to,
                    subject=rendered.subject,
                    text=rendered.text,
                    message_id=message_id(event_id),
                )
            )
        elif self.sms:
            await self.sms.send(SmsMessage(to=to, body=rendered.sms, idempotency_token=event_id))
        if self.after_send is not None:
            self.after_send()

    async def _record(
        self, event: dict[str, Any], payment: Payment, channel: str, recipient: str, template: str
    ) -> None:
        notification = Notification(
            id=ids.new_id("ntf"),
            merchant_id=payment.merchant_id,
            payment_id=payment.id,
            event_id=event["id"],
            channel=channel,
            recipient=recipient,
            template=template,
            created_at=self.clock(),
        )
        kind = channel.split("_")[0]
        # A racing delivery may have sent it too (under the same identity) and recorded it.
        with contextlib.suppress(AlreadyProcessed):
            await self.store.commit(
                Changeset(
                    processed=[(f"{CONSUMER}:{kind}", event["id"])], notifications=[notification]
                )
            )
