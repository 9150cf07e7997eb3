"""The Stripe sandbox as an ASGI app: Stripe's API surface, the 3DS page, `_config`.

Routes are relative (`/v1/payment_intents`, ...) so the app can be mounted
anywhere, e.g. `Mount("/sandbox/stripe", app=sandbox.app)`. Starlette does not
run the lifespan of a mounted app, so a parent calls `start()`/`stop()` itself;
run standalone, the app's own lifespan does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.sandbox.disputes import close_route
from paymesh.sandbox.faults import FaultInjector, fault_config_route
from paymesh.sandbox.ledger import ledger_route
from paymesh.sandbox.lifecycle import SandboxLifecycle
from paymesh.sandbox.limits import MemoryLimits
from paymesh.sandbox.return_urls import ReturnHosts
from paymesh.sandbox.settlement import settlement_route
from paymesh.sandbox.stripe import (
    audit,
    disputes,
    lookups,
    payment_intent_actions,
    payment_intents,
    refunds,
    settlement_report,
)
from paymesh.sandbox.stripe.accounts import Accounts
from paymesh.sandbox.stripe.api import RequestIds, StripeApi, json_response
from paymesh.sandbox.stripe.calls import Endpoint
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.events import EventPublisher
from paymesh.sandbox.stripe.three_d_secure import three_d_secure_route
from paymesh.sandbox.webhooks import WebhookSender

__all__ = ["StripeSandbox", "StripeSandboxSettings"]

_API: list[tuple[str, str, Endpoint]] = [
    ("/v1/payment_intents", "POST", payment_intents.create),
    ("/v1/payment_intents", "GET", payment_intents.list_all),
    ("/v1/payment_intents/{id}", "GET", payment_intents.retrieve),
    ("/v1/payment_intents/{id}", "POST", payment_intents.update),
    ("/v1/payment_intents/{id}/confirm", "POST", payment_intent_actions.confirm),
    ("/v1/payment_intents/{id}/capture", "POST", payment_intent_actions.capture),
    ("/v1/payment_intents/{id}/cancel", "POST", payment_intent_actions.cancel),
    ("/v1/refunds", "POST", refunds.create),
    ("/v1/refunds", "GET", refunds.list_all),
    ("/v1/refunds/{id}", "GET", refunds.retrieve),
    ("/v1/charges/{id}", "GET", lookups.retrieve_charge),
    ("/v1/disputes/{id}", "GET", lookups.retrieve_dispute),
    ("/v1/events", "GET", lookups.list_events),
    ("/v1/events/{id}", "GET", lookups.retrieve_event),
]


@dataclass
class StripeSandboxSettings:
    webhook_url: str | None = None  # where to POST webhooks; None = don't send
    webhook_secret: str = "whsec_paymesh_sandbox"  # noqa: S105 - a public test secret
    seed: int | None = None  # for deterministic fault injection in tests
    #: Hosts the 3-D Secure page may send the customer back to (`return_url`); None:
    #: loopback and `webhook_url`'s host. Any other return URL is not followed.
    return_url_hosts: tuple[str, ...] | None = None
    #: What the sandbox keeps in memory at most (`paymesh.sandbox.limits`).
    limits: MemoryLimits = field(default_factory=MemoryLimits)


class StripeSandbox(SandboxLifecycle):
    """An offline Stripe: state in memory, Stripe's wire format, signed webhooks."""

    def __init__(self, settings: StripeSandboxSettings) -> None:
        self.settings = settings
        self.faults = FaultInjector(settings.seed)
        self.webhooks = WebhookSender(self.faults, max_pending=settings.limits.pending_webhooks)
        self.accounts = Accounts(settings.limits)
        self._events = EventPublisher(settings, self.webhooks)
        api = StripeApi(self.accounts, self.faults, self._events)
        routes = [
            Route(path, api.handler(endpoint), methods=[method]) for path, method, endpoint in _API
        ]
        routes.append(fault_config_route(self.faults))
        routes.append(close_route(partial(disputes.close, self.accounts, self._events)))
        routes.append(ledger_route("stripe", partial(audit.ledger_rows, self.accounts)))
        routes.append(
            settlement_route(
                "stripe",
                partial(settlement_report.balance_entries, self.accounts),
                settlement_report.write_report,
            )
        )
        routes.append(three_d_secure_route(self.accounts, self._events, self._return_hosts))
        self.app = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={404: _not_found, 405: _not_found},
            middleware=[Middleware(RequestIds)],
        )

    def _return_hosts(self) -> ReturnHosts:
        # Read at each redirect: the webhook URL may be set after the sandbox is made.
        return ReturnHosts(self.settings.return_url_hosts, self.settings.webhook_url)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    if status not in (404, 405):
        return Response(status_code=status)
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    error = StripeError.unrecognized_url(request.method, path)
    return json_response(404, error.body(), {})
