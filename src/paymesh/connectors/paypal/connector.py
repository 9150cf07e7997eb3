"""The PayPal connector: our port over PayPal's REST API (the sandbox, or api-m.paypal.com).

Our reference for a payment is the PayPal **order id**. It is the one id that
exists from the first answer on every path (a card processed at once, a card
waiting for 3-D Secure, a wallet waiting for its buyer), it is what every
payment webhook names in `supplementary_data.related_ids.order_id`, and the
order lists its authorization and captures, so capture, void and refund look
those up from it and `retrieve` needs nothing else. The price is one GET before
each capture, void or refund; it also tells us the order's currency, which
PayPal wants on every amount and our port does not pass.

An order the payer has approved (after PayPal login or 3-D Secure) moves no
money until the merchant captures or authorizes it. `retrieve`, which the sync
job calls for payments still processing, does that step, with a request id
derived from the order, so however often it runs the order is completed once.

A 422 that says a step was already taken (a capture already captured, a void
already voided) is answered with the order's current state, as a retry after
a lost response should be. Transport and PayPal's errors become PspError in
`client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.paypal import translate, webhook
from paymesh.connectors.paypal.amounts import AmountNotRepresentable, to_paypal
from paymesh.connectors.paypal.client import PSP, PayPalHttp, error_for, issue_of
from paymesh.connectors.transport import HttpTransport
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import (
    AuthorizeRequest,
    PspError,
    RefundOutcome,
    WebhookEvent,
)

__all__ = ["PayPalConnector", "PayPalSettings"]

S = PaymentStatus

#: 422 issues saying the step was already taken (or can no longer be): the order's current
#: state is then the answer, as for a retry after a lost response.
_ALREADY_DONE = frozenset(
    {
        "AUTHORIZATION_ALREADY_CAPTURED",
        "AUTHORIZATION_VOIDED",
        "PREVIOUSLY_CAPTURED",
        "PREVIOUSLY_VOIDED",
        "ORDER_ALREADY_CAPTURED",
        "ORDER_ALREADY_AUTHORIZED",
        "ORDER_ALREADY_COMPLETED",
        "AUTHORIZATION_DENIED",
    }
)


@dataclass(frozen=True, slots=True)
class PayPalSettings:
    api_base: str  # e.g. http://127.0.0.1:8080/sandbox/paypal or https://api-m.paypal.com
    client_id: str
    client_secret: str
    webhook_id: str  # our webhook's id at PayPal: part of every signature
    #: The certificate webhooks must be signed under (the sandbox's `certificate_pem`, or
    #: PayPal's). None: no webhook can be verified, so every one is rejected.
    trusted_cert_pem: bytes | None
    timeout_seconds: float = 10.0
    return_url: str | None = None  # where PayPal sends the payer back after approval / 3DS
    webhook_tolerance_seconds: int = webhook.TOLERANCE_SECONDS

    def __repr__(self) -> str:  # never print the secret
        return f"PayPalSettings(api_base={self.api_base!r}, client_id={self.client_id!r}, ...)"


class PayPalConnector:
    name = PSP
    webhook_ack: bytes | None = None

    def __init__(self, settings: PayPalSettings, transport: HttpTransport | None = None) -> None:
        self.settings = settings
        certificate = (
            webhook.load_certificate(settings.trusted_cert_pem)
            if settings.trusted_cert_pem
            else None
        )
        self._webhooks = webhook.PayPalWebhooks(
            certificate, settings.webhook_id, settings.webhook_tolerance_seconds
        )
        # The process's shared transport; without one, a transport of its own, closed with it.
        self._owns_transport = transport is None
        self._transport = transport or AiohttpTransport()
        self._http = PayPalHttp(
            settings.api_base,
            settings.client_id,
            settings.client_secret,
            settings.timeout_seconds,
            self._transport,
        )

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _order(self, order_id: str) -> dict[str, Any]:
        path = f"/v2/checkout/orders/{quote(order_id, '')}"
        status, order = await self._http.request("GET", path)
        if status != 200:
            raise error_for(status, order)
        return order

    # -- the port -------------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> PspOutcome:
        try:
            body = translate.order_request(request, self.settings.return_url)
        except AmountNotRepresentable as exc:
            raise PspError(PSP, str(exc), code="amount_not_representable", retryable=False) from exc
        status, order = await self._http.request(
            "POST", "/v2/checkout/orders", body, request.idempotency_key
        )
        if status in (200, 201):
            return translate.outcome_from_order(order)
        issue = issue_of(order)
        if status == 422 and translate.is_decline_issue(issue):
            assert issue is not None
            return PspOutcome(
                status=S.FAILED, failure=translate.failure_from_issue(issue, order.get("message"))
            )
        raise error_for(status, order)

    async def capture(
        self,
        connector_payment_id: str,
        amount: int,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> PspOutcome:
        order = await self._order(connector_payment_id)
        authorization = _last(order, "authorizations")
        if authorization is None:
            return _settled_or_raise(order, "capture")
        try:
            money = to_paypal(amount, _currency(order))
        except AmountNotRepresentable as exc:
            raise PspError(PSP, str(exc), code="amount_not_representable", retryable=False) from exc
        path = f"/v2/payments/authorizations/{quote(authorization['id'], '')}/capture"
        status, capture = await self._http.request(
            "POST", path, {"amount": money, "final_capture": True}, idempotency_key
        )
        if status in (200, 201):
            return translate.outcome_from_capture(capture, connector_payment_id)
        if status == 422 and issue_of(capture) in _ALREADY_DONE:
            return translate.outcome_from_order(await self._order(connector_payment_id))
        raise error_for(status, capture)

    async def cancel(self, connector_payment_id: str, idempotency_key: str) -> PspOutcome:
        order = await self._order(connector_payment_id)
        authorization = _last(order, "authorizations")
        if authorization is None:
            outcome = translate.outcome_from_order(order)
            if outcome.status in (S.PENDING, S.REQUIRES_ACTION, S.PROCESSING) and not _last(
                order, "captures"
            ):
                # Nothing was authorized, and PayPal has no void for an order: it expires
                # unpaid. Canceling means we will never capture it, which is ours to decide.
                return PspOutcome(status=S.CANCELED, connector_payment_id=connector_payment_id)
            return outcome
        path = f"/v2/payments/authorizations/{quote(authorization['id'], '')}/void"
        status, voided = await self._http.request("POST", path, None, idempotency_key)
        if status == 200:
            return translate.outcome_from_authorization(voided, connector_payment_id)
        if status == 204:
            return PspOutcome(status=S.CANCELED, connector_payment_id=connector_payment_id)
        if status == 422 and issue_of(voided) in _ALREADY_DONE:
            return translate.outcome_from_order(await self._order(connector_payment_id))
        raise error_for(status, voided)

    async def refund(
        self,
        connector_payment_id: str,
        amount: int,
        refund_id: str,
        reason: str | None,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> RefundOutcome:
        order = await self._order(connector_payment_id)
        # One capture per payment here; a fully refunded one is still named, so that PayPal
        # itself answers CAPTURE_FULLY_REFUNDED.
        captures = sorted(
            (
                c
                for c in _payments(order, "captures")
                if c.get("status") in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED")
            ),
            key=lambda c: c.get("status") == "REFUNDED",
        )
        if not captures:
            return RefundOutcome(
                succeeded=False, connector_refund_id=None, failure_reason="not_captured"
            )
        capture = captures[0]
        try:
            money = to_paypal(amount, _currency(order))
        except AmountNotRepresentable as exc:
            return RefundOutcome(succeeded=False, connector_refund_id=None, failure_reason=str(exc))
        # Our refund id rides in custom_id (and invoice_id, which PayPal keeps unique per
        # refund), so the refund's webhook names it.
        body: dict[str, Any] = {"amount": money, "custom_id": refund_id, "invoice_id": refund_id}
        if reason:
            body["note_to_payer"] = reason.replace("_", " ")[:255]
        path = f"/v2/payments/captures/{quote(capture['id'], '')}/refund"
        status, refund = await self._http.request("POST", path, body, idempotency_key)
        if status in (200, 201):
            state = refund.get("status")
            verdict = (
                True
                if state == "COMPLETED"
                else False
                if state in ("FAILED", "CANCELLED")
                else None
            )
            reason_detail = (refund.get("status_details") or {}).get("reason")
            return RefundOutcome(
                succeeded=verdict,
                connector_refund_id=refund.get("id"),
                failure_reason=None
                if verdict is not False
                else str(reason_detail or state).lower(),
            )
        if 400 <= status < 500 and status not in (401, 409, 429):
            return RefundOutcome(
                succeeded=False,
                connector_refund_id=None,
                failure_reason=issue_of(refund) or refund.get("name"),
            )
        raise error_for(status, refund)

    async def retrieve(self, connector_payment_id: str) -> PspOutcome:
        order = await self._order(connector_payment_id)
        outcome = translate.outcome_from_order(order)
        if order.get("status") == "APPROVED" and outcome.status == S.PROCESSING:
            return await self._complete(order)
        return outcome

    async def _complete(self, order: dict[str, Any]) -> PspOutcome:
        """Capture or authorize an order its payer approved, once, however often asked."""
        order_id = str(order["id"])
        action = "authorize" if order.get("intent") == "AUTHORIZE" else "capture"
        path = f"/v2/checkout/orders/{quote(order_id, '')}/{action}"
        status, completed = await self._http.request(
            "POST", path, None, f"paymesh:{order_id}:{action}"
        )
        if status in (200, 201):
            return translate.outcome_from_order(completed)
        issue = issue_of(completed)
        if status == 422 and issue in _ALREADY_DONE:
            return translate.outcome_from_order(await self._order(order_id))
        if status == 422 and translate.is_decline_issue(issue):
            assert issue is not None
            return PspOutcome(
                status=S.FAILED,
                connector_payment_id=order_id,
                failure=translate.failure_from_issue(issue, completed.get("message")),
            )
        raise error_for(status, completed)

    def parse_webhook(
        self, headers: dict[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        return self._webhooks.parse(headers, body, now)

    async def confirm(self, event: WebhookEvent) -> WebhookEvent | None:
        """Act on what PayPal's API says, not on the body: PayPal signs the body's bytes
        for our webhook id, and any resource in our account (an order a buyer made
        client-side with our client id, with the custom_id of their choice, say) produces
        such a body. The order (or the refund, or the disputed capture) is fetched, and the
        event rebuilt from it; one PayPal does not know is None."""
        if event.outcome is not None:
            order = await self._lookup("/v2/checkout/orders/", event.connector_payment_id)
            return None if order is None else webhook.confirmed_by_order(event, order)
        if event.refund is not None:
            refund = await self._lookup("/v2/payments/refunds/", event.refund.connector_refund_id)
            return None if refund is None else webhook.confirmed_by_refund(event, refund)
        if event.dispute is not None or event.dispute_closed is not None:
            capture = await self._lookup("/v2/payments/captures/", event.psp_object_id)
            return None if capture is None else webhook.confirmed_by_capture(event, capture)
        return None  # nothing we act on: nothing to confirm

    async def _lookup(self, path: str, resource_id: object) -> dict[str, Any] | None:
        """A resource as PayPal's API shows it; None if it has no such resource. Errors that
        say nothing about the resource (credentials, 429, 5xx, transport) are PspError."""
        if not isinstance(resource_id, str) or not resource_id:
            return None
        status, found = await self._http.request("GET", path + quote(resource_id, ""))
        if status == 200:
            return found
        if status in (400, 404, 422):  # unknown, or not an id PayPal would make
            return None
        raise error_for(status, found, outcome_unknown=False)


def _payments(order: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    units = order.get("purchase_units") or [{}]
    found = (units[0].get("payments") or {}).get(kind) or []
    return [p for p in found if isinstance(p, dict) and isinstance(p.get("id"), str)]


def _last(order: dict[str, Any], kind: str) -> dict[str, Any] | None:
    found = _payments(order, kind)
    return found[-1] if found else None


def _currency(order: dict[str, Any]) -> str:
    units = order.get("purchase_units") or [{}]
    currency = (units[0].get("amount") or {}).get("currency_code")
    if not isinstance(currency, str) or not currency:
        raise PspError(
            PSP, f"order {order.get('id')} names no currency", code="bad_response", retryable=False
        )
    return currency.lower()


def _settled_or_raise(order: dict[str, Any], action: str) -> PspOutcome:
    """An order with nothing to `action`: its state answers if settled (a retry after a lost
    response); otherwise the request cannot be carried out."""
    outcome = translate.outcome_from_order(order)
    if outcome.status in (S.SUCCEEDED, S.CANCELED, S.FAILED):
        return outcome
    raise PspError(
        PSP,
        f"order {order.get('id')} has no authorization to {action} "
        f"(PayPal status {order.get('status')})",
        code="no_authorization",
        retryable=False,
    )
