"""The PayPal sandbox as an ASGI app: OAuth, Orders v2, Payments v2, webhook tools, `_config`.

Routes are relative (`/v2/checkout/orders`, ...) so the app can be mounted
anywhere, e.g. `Mount("/sandbox/paypal", app=sandbox.app)`. Starlette does not
run the lifespan of a mounted app, so a parent calls `start()`/`stop()` itself;
run standalone, the app's own lifespan does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.sandbox.disputes import close_route
from paymesh.sandbox.faults import FaultInjector, fault_config_route
from paymesh.sandbox.ledger import ledger_route
from paymesh.sandbox.lifecycle import SandboxLifecycle
from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.paypal import audit, disputes, orders, payments, settlement_report
from paymesh.sandbox.paypal.api import Operation, PayPalApi, error_response, json_response
from paymesh.sandbox.paypal.calls import Later
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.events import EventPublisher, cert_path
from paymesh.sandbox.paypal.idempotency import TTL_SECONDS
from paymesh.sandbox.paypal.notifications import notification_routes
from paymesh.sandbox.paypal.oauth import TokenServer
from paymesh.sandbox.paypal.payer import payer_routes
from paymesh.sandbox.paypal.signing import SigningIdentity
from paymesh.sandbox.paypal.state import Merchants
from paymesh.sandbox.return_urls import ReturnHosts
from paymesh.sandbox.settlement import settlement_route
from paymesh.sandbox.webhooks import WebhookSender

__all__ = ["PayPalSandbox", "PayPalSandboxSettings"]

_API: list[tuple[str, str, Operation]] = [
    ("/v2/checkout/orders", "POST", Operation(orders.create, "orders.create")),
    ("/v2/checkout/orders/{id}", "GET", Operation(orders.retrieve)),
    ("/v2/checkout/orders/{id}/capture", "POST", Operation(orders.capture, "orders.capture")),
    ("/v2/checkout/orders/{id}/authorize", "POST", Operation(orders.authorize, "orders.authorize")),
    ("/v2/payments/authorizations/{id}", "GET", Operation(payments.show_authorization)),
    (
        "/v2/payments/authorizations/{id}/capture",
        "POST",
        Operation(payments.capture_authorized, "authorizations.capture"),
    ),
    (
        "/v2/payments/authorizations/{id}/void",
        "POST",
        Operation(payments.void_authorized, "authorizations.void"),
    ),
    ("/v2/payments/captures/{id}", "GET", Operation(payments.show_capture)),
    (
        "/v2/payments/captures/{id}/refund",
        "POST",
        Operation(payments.refund_captured, "captures.refund"),
    ),
    ("/v2/payments/refunds/{id}", "GET", Operation(payments.show_refund)),
]


@dataclass
class PayPalSandboxSettings:
    webhook_url: str | None = None  # where to POST webhooks; None = don't send
    webhook_id: str = "WH-PAYMESH-SANDBOX"  # the receiver's id, part of every signature
    seed: int | None = None  # for deterministic fault injection in tests
    #: With both set, only this client may get tokens; otherwise any id and secret may.
    client_id: str | None = None
    client_secret: str | None = None
    token_ttl_seconds: int = 32_400  # PayPal's `expires_in`
    request_id_ttl_seconds: float = TTL_SECONDS
    #: How long an eCheck-funded capture stays PENDING before it clears or is denied.
    echeck_delay_ms: int = 200
    #: The signing identity; None makes a new key pair and certificate for this sandbox.
    signing: SigningIdentity | None = None
    #: Hosts the approval and 3-D Secure pages may send the payer back to (`return_url`,
    #: `cancel_url`); None: loopback and `webhook_url`'s host. Others are not followed.
    return_url_hosts: tuple[str, ...] | None = None
    #: What the sandbox keeps in memory at most (`paymesh.sandbox.limits`).
    limits: MemoryLimits = field(default_factory=MemoryLimits)


class PayPalSandbox(SandboxLifecycle):
    """An offline PayPal: state in memory, PayPal's wire format, RSA-signed webhooks."""

    def __init__(self, settings: PayPalSandboxSettings) -> None:
        self.settings = settings
        self.signing = settings.signing or SigningIdentity.generate()
        self.faults = FaultInjector(settings.seed)
        self.webhooks = WebhookSender(self.faults, max_pending=settings.limits.pending_webhooks)
        self.tokens = TokenServer(
            settings.client_id,
            settings.client_secret,
            settings.token_ttl_seconds,
            max_tokens=settings.limits.access_tokens,
        )
        self.merchants = Merchants(settings.request_id_ttl_seconds, settings.limits)
        self.events = EventPublisher(settings, self.webhooks, self.signing)
        self._later = Later()
        api = PayPalApi(
            self.tokens,
            self.merchants,
            self.faults,
            self.events,
            self._later,
            settings.echeck_delay_ms / 1000,
        )
        routes = [Route(path, api.handler(op), methods=[method]) for path, method, op in _API]
        routes.append(Route("/v1/oauth2/token", self._token, methods=["POST"]))
        routes += notification_routes(self.signing, self.tokens, self.events)
        routes += payer_routes(self.merchants, self.events, self._later, self._return_hosts)
        routes.append(fault_config_route(self.faults))
        routes.append(close_route(partial(disputes.close, self.merchants, self.events)))
        routes.append(ledger_route("paypal", partial(audit.ledger_rows, self.merchants)))
        routes.append(
            settlement_route(
                "paypal",
                partial(settlement_report.balance_entries, self.merchants),
                settlement_report.write_report,
            )
        )
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={404: _not_found, 405: _not_found},
        )

    @property
    def certificate_pem(self) -> bytes:
        """The certificate webhooks are signed under: a receiver's trust root."""
        return self.signing.cert_pem

    @property
    def cert_path(self) -> str:
        return cert_path(self.signing)

    def _return_hosts(self) -> ReturnHosts:
        # Read at each redirect: the webhook URL may be set after the sandbox is made.
        return ReturnHosts(self.settings.return_url_hosts, self.settings.webhook_url)

    async def stop(self) -> None:
        self._later.cancel_all()  # scheduled eCheck outcomes too
        await super().stop()

    async def _token(self, request: Request) -> Response:
        try:
            token = self.tokens.issue(request.headers.get("authorization"), await request.body())
        except PayPalError as error:
            return error_response(error)
        return json_response(200, msgspec.json.encode(token))


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status == 405:
        return error_response(PayPalError.method_not_supported())
    if status != 404:
        return Response(status_code=status)
    return error_response(PayPalError.unknown_url())
