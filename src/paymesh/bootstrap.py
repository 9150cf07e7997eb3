"""The composition root: the one place that wires adapters to ports.

Nothing is built at import time; `build_app` builds everything for one server and its
lifespan opens and closes it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from paymesh.adapters.sqlite import SqliteStore
from paymesh.config import Settings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.entrypoints.http.app import Api, build_http_app
from paymesh.entrypoints.http.openapi import build_openapi
from paymesh.ports.connector import Connector
from paymesh.ports.risk import AllowAll
from paymesh.service.apikeys import Authenticator
from paymesh.service.dispatch import Dispatcher
from paymesh.service.handlers import send_confirmation
from paymesh.service.payments import PaymentService
from paymesh.service.ratelimit import RateLimiter
from paymesh.service.recovery import Reconciler
from paymesh.service.webhooks import WebhookService

log = logging.getLogger("paymesh")


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_connectors(settings: Settings) -> dict[str, Connector]:
    api_base = settings.stripe_api_base or f"{settings.self_url}/sandbox/stripe"
    stripe = StripeConnector(StripeSettings(
        api_base=api_base, secret_key=settings.stripe_secret_key,
        webhook_secret=settings.stripe_webhook_secret, timeout_seconds=settings.psp_timeout))
    return {"stripe": stripe}


def build_app(settings: Settings) -> Starlette:
    import msgspec

    store = SqliteStore(settings.sqlite_path)
    connectors = build_connectors(settings)
    dispatcher_ref: list[Dispatcher] = []

    def on_commit() -> None:
        if dispatcher_ref:
            dispatcher_ref[0].notify()

    payments = PaymentService(store, connectors, AllowAll(), utcnow, on_commit=on_commit)
    webhooks = WebhookService(store, connectors, utcnow, on_commit)
    dispatcher = Dispatcher(store, {
        "payment.succeeded": [("send_confirmation", send_confirmation(store, utcnow))],
    })
    dispatcher_ref.append(dispatcher)
    reconciler = Reconciler(payments, utcnow)

    extra_routes: list[BaseRoute] = []
    sandboxes: list[Any] = []
    if settings.uses_sandbox:
        from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings

        sandbox = StripeSandbox(StripeSandboxSettings(
            webhook_url=f"{settings.self_url}/webhooks/stripe",
            webhook_secret=settings.stripe_webhook_secret))
        sandboxes.append(sandbox)
        extra_routes.append(Mount("/sandbox/stripe", app=sandbox.app))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        for box in sandboxes:
            await box.start()
        tasks = [asyncio.create_task(dispatcher.run(), name="dispatcher"),
                 asyncio.create_task(_recover_then_watch(reconciler), name="recovery")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for box in sandboxes:
                await box.stop()
            for connector in connectors.values():
                await connector.aclose()
            await store.close()

    state = Api(store=store, payments=payments, webhooks=webhooks, auth=Authenticator(store),
                limiter=RateLimiter(settings.rate_limit),
                openapi=msgspec.json.encode(build_openapi()))
    return build_http_app(state, extra_routes, lifespan)


async def _recover_then_watch(reconciler: Reconciler) -> None:
    # The server starts listening only after the lifespan's startup, and the built-in
    # sandbox is reached over HTTP on that same port: give it a moment first.
    await asyncio.sleep(0.5)
    try:
        recovered = await reconciler.run_once(grace=timedelta(0))
        if recovered:
            log.info("recovery: drove %d unsettled payments at start", recovered)
    except Exception:
        log.exception("recovery at start failed; the periodic pass will retry")
    await reconciler.run_forever()
