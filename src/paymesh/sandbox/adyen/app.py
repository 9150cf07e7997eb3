"""The Adyen sandbox as an ASGI app: Checkout API v71, the 3DS page, `_config`.

Routes are relative (`/v71/payments`, ...) so the app can be mounted anywhere, e.g.
`Mount("/sandbox/adyen", app=sandbox.app)`. Starlette does not run the lifespan of a mounted
app, so a parent calls `start()`/`stop()` itself; run standalone, the app's own lifespan does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.sandbox.adyen import audit, disputes, modifications, payments
from paymesh.sandbox.adyen.api import AdyenApi, error_response
from paymesh.sandbox.adyen.calls import Endpoint
from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.adyen.ledger import Ledger
from paymesh.sandbox.adyen.settlement_report import (
    JournalingNotifier,
    SettlementJournal,
    write_report,
)
from paymesh.sandbox.adyen.three_d_secure import three_d_secure_route
from paymesh.sandbox.disputes import close_route
from paymesh.sandbox.faults import FaultInjector, fault_config_route
from paymesh.sandbox.ledger import ledger_route
from paymesh.sandbox.lifecycle import SandboxLifecycle
from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.return_urls import ReturnHosts
from paymesh.sandbox.settlement import settlement_route
from paymesh.sandbox.webhooks import WebhookSender

__all__ = ["DEFAULT_HMAC_KEY", "AdyenSandbox", "AdyenSandboxSettings"]

#: A public test key, like the sandbox's Stripe secret: it guards nothing real.
DEFAULT_HMAC_KEY = "08F2B4BA0114B680CB076A045C13272D1648E9661DC35E048F6989506280F155"

_API: list[tuple[str, str, Endpoint]] = [
    ("/v71/payments", "POST", payments.create),
    ("/v71/payments/details", "POST", payments.details),
    ("/v71/payments/{pspReference}", "GET", payments.retrieve),  # sandbox only
    ("/v71/payments/{pspReference}/captures", "POST", modifications.capture),
    ("/v71/payments/{pspReference}/cancels", "POST", modifications.cancel),
    ("/v71/payments/{pspReference}/refunds", "POST", modifications.refund),
]


@dataclass
class AdyenSandboxSettings:
    webhook_url: str | None = None  # where to POST notifications; None = don't send
    hmac_key: str = field(default=DEFAULT_HMAC_KEY, repr=False)  # hex, as Adyen shows it
    merchant_account: str = "PaymeshSandbox"
    seed: int | None = None  # for deterministic fault injection in tests
    #: Further merchant accounts of the same company (one API key may use them all).
    other_merchant_accounts: tuple[str, ...] = ()
    #: The merchant accounts' default capture mode (in Adyen, a Customer Area setting).
    manual_capture: bool = False
    #: Hosts the 3-D Secure page may send the shopper back to (`returnUrl`); None:
    #: loopback and `webhook_url`'s host. Any other return URL is not followed.
    return_url_hosts: tuple[str, ...] | None = None
    #: What the sandbox keeps in memory at most (`paymesh.sandbox.limits`).
    limits: MemoryLimits = field(default_factory=MemoryLimits)

    def __post_init__(self) -> None:
        try:  # fail now, not at the first notification
            bytes.fromhex(self.hmac_key)
        except ValueError:
            raise ValueError("hmac_key must be hex, as Adyen's Customer Area shows it") from None


class AdyenSandbox(SandboxLifecycle):
    """An offline Adyen: state in memory, Checkout's wire format, HMAC-signed notifications."""

    def __init__(self, settings: AdyenSandboxSettings) -> None:
        self.settings = settings
        self.faults = FaultInjector(settings.seed)
        self.webhooks = WebhookSender(self.faults, max_pending=settings.limits.pending_webhooks)
        self.ledger = Ledger(settings.limits)
        # Adyen's payments keep no times: the settlement report's journal is kept as it notifies.
        self.journal = SettlementJournal(settings.limits.objects)
        notifier = JournalingNotifier(settings, self.webhooks, self.ledger, self.journal)
        api = AdyenApi(
            self.ledger,
            self.faults,
            notifier,
            self._merchant_accounts,
            lambda: settings.manual_capture,
        )
        routes = [
            Route(path, api.handler(endpoint), methods=[method]) for path, method, endpoint in _API
        ]
        routes.append(fault_config_route(self.faults))
        routes.append(close_route(partial(disputes.close, self.ledger, notifier)))
        routes.append(ledger_route("adyen", partial(audit.ledger_rows, self.ledger)))
        routes.append(
            settlement_route(
                "adyen",
                lambda: list(self.journal.entries),
                partial(write_report, merchant_account=settings.merchant_account),
            )
        )
        routes.append(three_d_secure_route(self.ledger, notifier, self._return_hosts))
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={404: _not_found, 405: _not_found},
        )

    def _merchant_accounts(self) -> frozenset[str]:
        return frozenset((self.settings.merchant_account, *self.settings.other_merchant_accounts))

    def _return_hosts(self) -> ReturnHosts:
        # Read at each redirect: the webhook URL may be set after the sandbox is made.
        return ReturnHosts(self.settings.return_url_hosts, self.settings.webhook_url)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status not in (404, 405):
        return Response(status_code=status)
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    return error_response(AdyenError.not_found(f"{request.method} {path}"))
