"""`/metrics` of a `paymesh worker`, on a listener of its own (`--metrics-port`).

A worker has no HTTP API, yet its metrics are the bus's: delivery attempts, failures and
dead letters per target, the outbox, the PSP calls its handlers make. One endpoint per
process, as for `paymesh serve`: Prometheus scrapes every worker on its own and adds the
series up; no multiprocess mode (a worker is one interpreter, never forked). The same token
rule as the API's `/metrics` (`PAYMESH_METRICS_TOKEN`): 404 without one, 401 for a wrong one.

The listener runs in the worker's own loop, beside its work (`run_worker`'s `alongside`), on
the server configuration the API runs on, and leaves SIGTERM and SIGINT to the worker, which
stops it last.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.entrypoints.http.metrics import exposition, refused
from paymesh.entrypoints.http.server import build_config

if TYPE_CHECKING:
    from paymesh.bootstrap import Core

PORT_ENV = "PAYMESH_WORKER_METRICS_PORT"
HOST_ENV = "PAYMESH_WORKER_METRICS_HOST"


class _Listener(uvicorn.Server):
    """uvicorn, minus its signal handlers: they would take SIGTERM from the worker."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def worker_metrics_app(core: Core, token: str | None) -> Starlette:
    async def metrics(request: Request) -> Response:
        refusal = refused(request, token)
        if refusal is not None:
            return refusal
        return await exposition(core.metrics, core.store)

    return Starlette(routes=[Route("/metrics", metrics, methods=["GET"])])


def metrics_listener(
    host: str, port: int, token: str | None
) -> Callable[[Core], contextlib.AbstractAsyncContextManager[None]]:
    """What `run_worker` runs alongside its work: `/metrics` at http://HOST:PORT."""

    @contextlib.asynccontextmanager
    async def listening(core: Core) -> AsyncIterator[None]:
        config = build_config(
            worker_metrics_app(core, token),
            host=host,
            port=port,
            log_level="warning",
            own_logging=True,
        )
        server = _Listener(config)
        serving = asyncio.create_task(server.serve(), name="metrics-listener")
        try:
            yield
        finally:
            server.should_exit = True
            await serving

    return listening
