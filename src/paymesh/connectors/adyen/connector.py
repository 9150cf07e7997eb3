"""The Adyen connector: our port over Adyen's Checkout API v71 (the sandbox, or Adyen's own).

It translates, and the process's `HttpTransport` sends. Failures become PspError with the two
facts the service needs: may a retry help (`retryable`), and may Adyen have acted
(`outcome_unknown`); the transport's in `connectors.transport`, Adyen's answers here:

    connection refused, connect timeout   retryable, nothing done
    read timeout, 5xx                     retryable, outcome unknown: sync with the same key
    409 / 422 errorCode 704, transient    the key's first request still runs: unknown
    422 errorCode 704, not transient      the key was used for another request: not retryable
    429                                   retryable, nothing done
    other 4xx                             not retryable
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from paymesh.connectors.adyen import translate, webhook
from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.transport import HttpTransport, psp_transport_errors
from paymesh.domain.payment import PspOutcome
from paymesh.domain.status import PaymentStatus
from paymesh.ports.connector import AuthorizeRequest, PspError, RefundOutcome, WebhookEvent

__all__ = ["AdyenConnector", "AdyenSettings"]

PSP = "adyen"
API_VERSION = "v71"
_CURRENCIES_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class AdyenSettings:
    api_base: str  # e.g. http://127.0.0.1:8080/sandbox/adyen or https://checkout-test.adyen.com
    api_key: str = field(repr=False)  # secrets stay out of logs and tracebacks
    merchant_account: str
    hmac_key: str = field(repr=False)  # hex, as Adyen's Customer Area shows it
    timeout_seconds: float = 10.0
    return_url: str | None = None


def _error_for(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> PspError:
    code = str(body.get("errorCode") or "") or None
    message = str(body.get("message") or f"HTTP {status}")
    if code == "704":
        if status == 409 or headers.get("transient-error") == "true":
            return PspError(PSP, message, http_status=status, code=code, outcome_unknown=True)
        return PspError(PSP, message, http_status=status, code=code, retryable=False)
    if status == 429:
        return PspError(PSP, message, http_status=status, code=code or "rate_limit")
    if status >= 500:
        return PspError(PSP, message, http_status=status, code=code, outcome_unknown=True)
    return PspError(PSP, message, http_status=status, code=code, retryable=False)


class AdyenConnector:
    name = PSP
    webhook_ack: bytes | None = b"[accepted]"  # Adyen's notification contract, or it keeps retrying

    def __init__(self, settings: AdyenSettings, transport: HttpTransport | None = None) -> None:
        self.settings = settings
        try:  # a bad key fails here, not at every webhook
            hmac_key = bytes.fromhex(settings.hmac_key)
        except ValueError:
            raise ValueError("hmac_key must be hex, as Adyen's Customer Area shows it") from None
        self._webhooks = webhook.AdyenWebhooks(hmac_key)
        self._base = f"{settings.api_base.rstrip('/')}/{API_VERSION}"
        self._headers = {"X-API-Key": settings.api_key, "Content-Type": "application/json"}
        # The process's shared transport; without one, a transport of its own, closed with it.
        self._owns_transport = transport is None
        self._transport = transport or AiohttpTransport()
        self._currencies: OrderedDict[str, str] = OrderedDict()

    async def aclose(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        headers = dict(self._headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        data = msgspec.json.encode(body) if body is not None else None
        with psp_transport_errors(PSP, "Adyen"):
            answer = await self._transport.request(
                method, self._base + path, headers, data, self.settings.timeout_seconds
            )
        try:
            decoded = msgspec.json.decode(answer.body)
        except msgspec.DecodeError:
            decoded = {}
        return answer.status, decoded if isinstance(decoded, dict) else {}, answer.headers

    async def authorize(self, request: AuthorizeRequest) -> PspOutcome:
        body = translate.payment_request(
            request, self.settings.merchant_account, self.settings.return_url
        )
        status, answer, headers = await self._request(
            "POST", "/payments", body, request.idempotency_key
        )
        if status != 200:
            raise _error_for(status, answer, headers)
        outcome = translate.outcome_from_payment(answer, request.capture_method == "manual")
        if outcome.connector_payment_id:
            self._remember(outcome.connector_payment_id, request.currency)
        return outcome

    async def capture(
        self,
        connector_payment_id: str,
        amount: int,
        idempotency_key: str,
        *,
        currency: str | None = None,
    ) -> PspOutcome:
        currency = currency or await self._currency_of(connector_payment_id)
        body = translate.capture_request(self.settings.merchant_account, amount, currency)
        status, answer, headers = await self._request(
            "POST", f"/payments/{connector_payment_id}/captures", body, idempotency_key
        )
        if status not in (200, 201):
            raise _error_for(status, answer, headers)
        return translate.outcome_from_capture(answer, connector_payment_id)

    async def cancel(self, connector_payment_id: str, idempotency_key: str) -> PspOutcome:
        body = translate.cancel_request(self.settings.merchant_account)
        status, answer, headers = await self._request(
            "POST", f"/payments/{connector_payment_id}/cancels", body, idempotency_key
        )
        if status not in (200, 201):
            raise _error_for(status, answer, headers)
        return PspOutcome(
            status=PaymentStatus.CANCELED,
            connector_payment_id=answer.get("paymentPspReference") or connector_payment_id,
        )

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
        currency = currency or await self._currency_of(connector_payment_id)
        body = translate.refund_request(
            self.settings.merchant_account, amount, currency, refund_id, reason
        )
        status, answer, headers = await self._request(
            "POST", f"/payments/{connector_payment_id}/refunds", body, idempotency_key
        )
        if status in (200, 201):
            # "received": Adyen has it; the REFUND notification brings the verdict.
            return RefundOutcome(succeeded=None, connector_refund_id=answer.get("pspReference"))
        if status == 422 and answer.get("errorCode") != "704":
            # Refused outright (more than is left, nothing captured): nothing was refunded.
            return RefundOutcome(
                succeeded=False,
                connector_refund_id=None,
                failure_reason=answer.get("message") or answer.get("errorCode"),
            )
        raise _error_for(status, answer, headers)

    async def retrieve(self, connector_payment_id: str) -> PspOutcome:
        """The payment's state, from the sandbox's own `GET /v71/payments/{pspReference}`.

        Real Adyen has no such endpoint: there, a payment's state is learned from the
        `/payments` answer (replayed by sending the authorisation again with the same
        Idempotency-Key, which the service's sync does when it has no PSP reference) and from
        notifications. Against Adyen's own API this call fails with a 4xx: a permanent error.
        """
        status, answer, headers = await self._request("GET", f"/payments/{connector_payment_id}")
        if status != 200:
            raise _error_for(status, answer, headers)
        currency = (answer.get("amount") or {}).get("currency")
        if isinstance(currency, str):
            self._remember(connector_payment_id, currency)
        return translate.outcome_from_state(answer)

    def parse_webhook(
        self, headers: dict[str, str], body: bytes, now: datetime
    ) -> list[WebhookEvent]:
        return self._webhooks.parse(headers, body, now)

    async def confirm(self, event: WebhookEvent) -> WebhookEvent | None:
        # Every field the event is built from is under the item's HMAC (see `webhook`), and
        # real Adyen has no API to ask a payment's state: the signature is the confirmation.
        return event

    # -- the payment's currency -----------------------------------------------------------

    async def _currency_of(self, connector_payment_id: str) -> str:
        """Adyen wants the currency on every capture and refund; the port does not pass it.

        It is remembered from the authorisation's answer; after a restart it is asked of the
        sandbox's status lookup (real Adyen has none, so there the port should pass it).
        """
        known = self._currencies.get(connector_payment_id)
        if known is None:
            await self.retrieve(connector_payment_id)
            known = self._currencies[connector_payment_id]
        return known

    def _remember(self, connector_payment_id: str, currency: str) -> None:
        # Interned: one "EUR" for all of them, not one per payment (100,000 are kept).
        self._currencies[connector_payment_id] = sys.intern(currency.upper())
        self._currencies.move_to_end(connector_payment_id)
        if len(self._currencies) > _CURRENCIES_KEPT:
            self._currencies.popitem(last=False)
