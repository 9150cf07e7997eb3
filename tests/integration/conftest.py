"""A real paymesh server (SQLite file) on a loopback port, its PSP sandboxes on their own."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from paymesh.bootstrap import build_store
from paymesh.config import Settings
from paymesh.entrypoints.http.asgi import build_app
from paymesh.service.apikeys import create_key
from tests.support.live_server import free_port, live_server


@dataclass
class Server:
    base: str
    key: str
    other_key: str
    settings: Settings
    sandbox_url: str  # the built-in sandboxes' own listener: http://127.0.0.1:PORT

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, timeout=20, headers={"Authorization": f"Bearer {key or self.key}"}
        )

    def sandbox(self) -> httpx.Client:
        """The Stripe sandbox, as the connector sees it (same secret key: same account)."""
        return httpx.Client(
            base_url=f"{self.sandbox_url}/sandbox/stripe",
            timeout=20,
            headers={"Authorization": f"Bearer {self.settings.stripe_secret_key}"},
        )


def make_keys(settings: Settings, *merchants: str) -> list[str]:
    async def run() -> list[str]:
        store = build_store(settings)
        await store.open()
        try:
            return [await create_key(store, m, datetime.now(UTC)) for m in merchants]
        finally:
            await store.close()

    return asyncio.run(run())


def start(tmp_path: Path, **overrides: object) -> Generator[Server, None, None]:
    port = free_port()
    settings = Settings.from_env(data_dir=tmp_path, port=port, **{"rate_limit": 0.0, **overrides})
    key, other = make_keys(settings, "shop", "other-shop")
    app = build_app(settings)
    with live_server(app, port) as base:
        yield Server(base, key, other, settings, app.state.sandbox_url)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from start(tmp_path)
