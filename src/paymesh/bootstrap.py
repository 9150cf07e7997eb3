"""The composition root: the one place that wires adapters to ports.

Nothing is built at import time; `build_app` builds everything for one server and its
lifespan opens and closes it in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.sqlite import SqliteStore
from paymesh.config import Settings
from paymesh.connectors.stripe import StripeConnector, StripeSettings
from paymesh.entrypoints.http.app import build_http_app
from paymesh.entrypoints.http.common import Api
from paymesh.entrypoints.http.openapi import build_openapi
from paymesh.entrypoints.http.rules_api import RuleBody, to_rule
from paymesh.ports.bus import Rule, Target
from paymesh.ports.connector import Connector
from paymesh.ports.risk import AllowAll
from paymesh.service.apikeys import Authenticator
from paymesh.service.bus import Builtin, EventBus
from paymesh.service.handlers import (
    Analytics,
    payment_retry,
    placeholder,
    process_payment,
    send_confirmation,
)
from paymesh.service.payments import PaymentService
from paymesh.service.ratelimit import RateLimiter
from paymesh.service.recovery import Reconciler
from paymesh.service.router import DEFAULT, Router
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


def builtin_names() -> set[str]:
    return {"send_confirmation", "process_payment", "update_inventory", "payment_retry",
            "fraud_review", "fraud_detection", "analytics"}


def default_rules(inventory_url: str | None) -> list[Rule]:
    """The reference's rules (DESIGN.md's table), from the packaged default rules file."""
    import msgspec

    raw = resources.files("paymesh.service").joinpath("default_rules.json").read_bytes()
    rules = []
    for item in msgspec.json.decode(raw):
        name = item.pop("name")
        rule = to_rule(DEFAULT, name, msgspec.convert(item, RuleBody), builtin_names())
        if inventory_url:  # the merchant's inventory service, as a signed HTTP target
            rule = replace(rule, targets=tuple(
                Target(id=t.id, type="http", url=inventory_url, retry_policy=t.retry_policy)
                if t.name == "update_inventory" else t for t in rule.targets))
        rules.append(rule)
    return rules


def build_app(settings: Settings) -> Starlette:
    import msgspec

    store = SqliteStore(settings.sqlite_path)
    connectors = build_connectors(settings)
    bus_ref: list[EventBus] = []

    def on_commit() -> None:
        if bus_ref:
            bus_ref[0].notify()

    payments = PaymentService(store, connectors, AllowAll(), utcnow, on_commit=on_commit)
    webhooks = WebhookService(store, connectors, utcnow, on_commit)
    builtins: dict[str, Builtin] = {
        "send_confirmation": send_confirmation(store, utcnow),
        "process_payment": process_payment(payments, utcnow),
        "update_inventory": placeholder("update_inventory", "PAYMESH_INVENTORY_URL"),
        "payment_retry": payment_retry(payments, utcnow,
                                       base=timedelta(seconds=settings.bus_retry_base * 2)),
        "fraud_review": placeholder("fraud_review", "the fraud issue"),
        "fraud_detection": placeholder("fraud_detection", "the fraud issue"),
        "analytics": Analytics(),
    }
    sender = AiohttpTargetSender()
    bus = EventBus(store, Router(default_rules(settings.inventory_url)), builtins, sender,
                   utcnow, retry_base_seconds=settings.bus_retry_base)
    bus_ref.append(bus)
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
        bus.router.load(await store.rules())
        # Embedded: one process owns this file, so leases left by a dead one are free now.
        await store.release_leases()
        for box in sandboxes:
            await box.start()
        tasks = [asyncio.create_task(bus.run(), name="event-bus"),
                 asyncio.create_task(_recover_then_watch(reconciler), name="recovery")]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await bus.stop()
            await sender.aclose()
            for box in sandboxes:
                await box.stop()
            for connector in connectors.values():
                await connector.aclose()
            await store.close()

    state = Api(store=store, payments=payments, webhooks=webhooks, auth=Authenticator(store),
                limiter=RateLimiter(settings.rate_limit), bus=bus,
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
