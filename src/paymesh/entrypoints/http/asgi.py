"""The ASGI app of `paymesh serve`: the API process bootstrap builds, behind the v1 routes.

Its lifespan is the process's: started with the server, stopped with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from starlette.applications import Starlette

from paymesh.bootstrap import ApiProcess, build_api, psp_lines
from paymesh.config import Settings
from paymesh.entrypoints.http.app import build_http_app
from paymesh.entrypoints.http.common import Api
from paymesh.entrypoints.http.docs import docs_routes
from paymesh.entrypoints.http.metrics import metrics_token
from paymesh.entrypoints.http.openapi import build_openapi


def build_app(settings: Settings, process: ApiProcess | None = None) -> Starlette:
    """The app of `settings`; `process` replaces the API process they would build (tests run
    the whole app on the in-memory store and fake PSPs this way)."""
    process = process if process is not None else build_api(settings)
    core = process.core

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with process.running():
            yield

    state = Api(
        store=core.store,
        payments=core.payments,
        webhooks=process.webhooks,
        auth=process.auth,
        limiter=process.limiter,
        bus=core.bus,
        reviews=process.reviews,
        routing=core.routing,
        openapi=msgspec.json.encode(build_openapi()),
        rules=process.rule_mirror,
    )
    app = build_http_app(
        state, docs_routes(), lifespan, metrics=core.metrics, metrics_token=metrics_token()
    )
    app.state.sandbox_url = core.listener.url if core.listener else None
    app.state.report_sources = core.report_sources
    app.state.psp_lines = psp_lines(settings, core.listener)
    # The deliverer process serves no HTTP: its counts come with this process's scrape.
    app.state.metrics_beside = (
        process.deliverer.metrics_path if process.deliverer is not None else None
    )
    return app
