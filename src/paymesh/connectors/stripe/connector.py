"""The Stripe connector: our port over Stripe's HTTP API (the sandbox, or api.stripe.com).

It translates, and the process's `HttpTransport` sends. Transport failures become PspError in
`connectors.transport`, with the two facts the service needs: may a retry help
(`retryable`), and may Stripe have acted (`outcome_unknown`); Stripe's answers here:

    402 with its PaymentIntent           a decline: an answer, not an error
    409 (our key still executing), 5xx   retryable, outcome unknown: sync with the same key
    429                                  retryable, nothing done
    other 4xx                            not retryable
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import msgspec

from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.stripe import translate, webhook
from paymesh.connectors.transport import HttpTransport, psp_transport_errors
from paymesh.domain.payment import PspOutcome
from paymesh.ports.connector import AuthorizeRequest, PspError, RefundOutcome, WebhookEvent

PSP = "stripe"
API_VERSION = "2024-06-20"


@dataclass(frozen=True, slots=True)
class StripeSettings:
    api_base: str  # e.g. http://127.0.0.1:8080/sandbox/stripe or https://api.stripe.com
    secret_key: str = field(repr=False)  # secrets stay out of logs and tracebacks
    webhook_secret: str = field(repr=False)
    timeout_seconds: float = 10.0
    return_url: str | None = None


def _error_for(status: int, body: dict[str, Any]) -> PspError:
    error = body.get("error") or {}
    code = error.get("code") or error.get("type")
    message = error.get("message") or f"HTTP {status}"
    if status == 429:
        return PspError(PSP, message, http_status=status, code=code or "rate_limit")
    if status == 409:  # our key is still executing at Stripe
        return PspError(PSP, message, http_status=status, code=code, outcome_unknown=True)
    if status >= 500:
        return PspError(PSP, message, http_status=status, code=code, outcome_unknown=True)
    return PspError(PSP, message, http_status=status, code=code, retryable=False)


class StripeConnector:
    name = PSP
    webhook_ack: bytes | None = None

    def __init__(self, settings: StripeSettings, transport: HttpTransport | None = None) -> None:
        self.settings = settings
        self._base = settings.api_base.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {settings.secret_key}",
            "Stripe-Version": API_VERSION,
        }
        # The process's shared transport; without one, a transport of its own, closed with it.
        self._owns_transport = transport is None
        self._transport = transport or AiohttpTransport()
        self._webhooks = webhook.StripeWebhooks(settings.webhook_secret)

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        headers = dict(self._headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        form = None
        if method != "GET":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            form = translate.form_body(translate.form_fields(params or {}))
        with psp_transport_errors(PSP, "Stripe"):
            answer = await self._transport.request(
                method, self._base + path, headers, form, self.settings.timeout_seconds
            )
        try:
            body = msgspec.json.decode(answer.body)
        except msgspec.DecodeError:
            body = {}
        return answer.status, body if isinstance(body, dict) else {}

    async def _intent_call(
        self, path: str, params: dict[str, Any], key: str, accept_state_error: bool
    ) -> PspOutcome:
        status, body = await self._request("POST", path, params, key)
        if status == 200:
            return translate.outcome_from_intent(body)
        error = body.get("error") or {}
        if status == 402 and error.get("payment_intent"):
            outcome = translate.outcome_from_intent(error["payment_intent"])
            if outcome.failure is None:
                return PspOutcome(
                    status=translate.S.FAILED,
                    connector_payment_id=outcome.connector_payment_id,
                    failure=translate.failure_from_error(error),
                )
            return outcome
        if status == 400 and accept_state_error and error.get("payment_intent"):
            # e.g. capture of a PI already captured: its current state is the answer.
            return translate.outcome_from_intent(error["payment_intent"])
        raise _error_for(status, body)

    async def authorize(self, request: AuthorizeRequest) -> PspOutcome:
        params = translate.authorize_params(request, self.settings.return_url)
        return await self._intent_call(
            "/v1/payment_intents", params, request.idempotency_key, accept_state_error=False
        )

    async def capture(
        self,
        connector_payment_id: str,
        amount: int,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> PspOutcome:
        return await self._intent_call(
            f"/v1/payment_intents/{connector_payment_id}/capture",
            {"amount_to_capture": amount},
            idempotency_key,
            accept_state_error=True,
        )

    async def cancel(self, connector_payment_id: str, idempotency_key: str) -> PspOutcome:
        return await self._intent_call(
            f"/v1/payment_intents/{connector_payment_id}/cancel",
            {},
            idempotency_key,
            accept_state_error=True,
        )

    async def retrieve(self, connector_payment_id: str) -> PspOutcome:
        status, body = await self._request("GET", f"/v1/payment_intents/{connector_payment_id}")
        if status != 200:
            raise _error_for(status, body)
        return translate.outcome_from_intent(body)

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
        params: dict[str, Any] = {
            "payment_intent": connector_payment_id,
            "amount": amount,
            "metadata": {"paymesh_refund_id": refund_id},
        }
        if reason in ("duplicate", "fraudulent", "requested_by_customer"):
            params["reason"] = reason
        status, body = await self._request("POST", "/v1/refunds", params, idempotency_key)
        if status == 200:
            state = body.get("status")
            verdict = (
                True if state == "succeeded" else False if state in ("failed", "canceled") else None
            )
            return RefundOutcome(
                succeeded=verdict,
                connector_refund_id=body.get("id"),
                failure_reason=body.get("failure_reason"),
            )
        if 400 <= status < 500 and status not in (409, 429):
            error = body.get("error") or {}
            return RefundOutcome(
                succeeded=False,
                connector_refund_id=None,
                failure_reason=error.get("code") or error.get("message"),
            )
        raise _error_for(status, body)

    def parse_webhook(
        self, headers: dict[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        return self._webhooks.parse(headers, body, now)

    async def confirm(self, event: WebhookEvent) -> WebhookEvent | None:
        # The signature covers the whole body and a timestamp: every field is Stripe's own,
        # and ownership is then checked against the PaymentIntent id, amount and currency.
        if event.dispute is not None and event.payment_id is None and event.connector_payment_id:
            # A dispute names only the PaymentIntent. Opened right at capture, it can arrive
            # before our own answer is stored, and would then be news of nobody's payment and
            # lost: the intent's metadata names the payment, which then refuses it until our
            # answer is stored, and Stripe delivers it again.
            status, body = await self._request(
                "GET", f"/v1/payment_intents/{event.connector_payment_id}"
            )
            if status == 404:
                return event  # not an intent of this account: nobody's payment
            if status != 200:
                raise _error_for(status, body)
            named = (body.get("metadata") or {}).get("paymesh_payment_id")
            if isinstance(named, str):
                return replace(event, payment_id=named)
        return event
