"""The worker's `/metrics` app keeps the API's token rule: 404 while no token is configured,
401 for a missing or wrong one, the exposition for the right one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from paymesh.adapters.memory import MemoryStore
from paymesh.bootstrap import Core, build_core
from paymesh.config import Settings
from paymesh.connectors.fake import FakePsp
from paymesh.entrypoints.worker_metrics import worker_metrics_app

TOKEN = "worker-token"


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[Core]:
    settings = Settings.from_env(data_dir=tmp_path)
    store = MemoryStore()
    await store.open()
    yield build_core(settings, store=store, connectors={"stripe": FakePsp("stripe")})
    await store.close()


async def scrape(core: Core, token: str | None, sent: str | None) -> httpx.Response:
    app = worker_metrics_app(core, token)
    headers = {"Authorization": f"Bearer {sent}"} if sent else {}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://worker.test"
    ) as client:
        return await client.get("/metrics", headers=headers)


async def test_without_a_configured_token_the_worker_has_no_metrics(core: Core) -> None:
    r = await scrape(core, None, TOKEN)
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"


async def test_a_missing_or_wrong_token_is_refused(core: Core) -> None:
    assert (await scrape(core, TOKEN, None)).status_code == 401
    wrong = await scrape(core, TOKEN, "nope")
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"


async def test_the_right_token_gets_the_workers_own_registry(core: Core) -> None:
    core.metrics.deliveries.labels("send_confirmation", "delivered").inc()
    r = await scrape(core, TOKEN, TOKEN)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        'paymesh_delivery_attempts_total{result="delivered",target="send_confirmation"} 1.0'
        in r.text
    )
    assert "paymesh_outbox_backlog 0.0" in r.text
