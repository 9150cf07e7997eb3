"""The whole API process, built by bootstrap with the in-memory store and a fake PSP injected:
no socket is opened and no database file is written, and a payment goes all the way through (the
route, the use case, the store, the PSP, the outbox, the bus's built-in targets)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from paymesh.adapters.memory import MemoryStore
from paymesh.bootstrap import build_api, build_core
from paymesh.config import Settings
from paymesh.connectors.fake import FakePsp
from paymesh.entrypoints.http.asgi import build_app
from paymesh.service.apikeys import create_key


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a socket was connected or bound")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "bind", refuse)
    yield


async def until(check: Any, seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_payment_through_the_whole_app_on_the_in_memory_store_and_a_fake_psp(
    tmp_path: Path, no_sockets: None
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings.from_env(data_dir=data_dir, rate_limit=0.0)
    store, psp = MemoryStore(), FakePsp("stripe")
    process = build_api(settings, build_core(settings, store=store, connectors={"stripe": psp}))
    app = build_app(settings, process)
    async with process.running():
        key = await create_key(store, "shop", datetime.now(UTC))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://paymesh.test"
        ) as client:
            auth = {"Authorization": f"Bearer {key}"}
            created = await client.post(
                "/v1/payments",
                headers=auth,
                json={
                    "amount": 2500,
                    "currency": "usd",
                    "customer_id": "cus_1",
                    "payment_method": "pm_card_visa",
                },
            )
            assert created.status_code == 201, created.text
            body = created.json()
            assert (body["status"], body["amount_captured"], body["connector"]) == (
                "succeeded",
                2500,
                "stripe",
            )
            [charge] = psp.charges_for(body["id"])
            assert charge.amount == 2500

            async def confirmed() -> bool:
                return bool(await store.notifications_for_payment("shop", body["id"]))

            await until(confirmed)  # the bus ran send_confirmation on payment.succeeded
            timeline = await client.get(f"/v1/payments/{body['id']}/events", headers=auth)
            assert timeline.status_code == 200
            types = [e["detail-type"] for e in timeline.json()["data"]]
            assert types[:2] == ["payment.initiated", "payment.succeeded"]
    assert psp.authorizations == 1
    # Only the sandbox secrets the settings generate for themselves; no database.
    written = sorted(p.name for p in data_dir.rglob("*") if p.is_file())
    assert written == ["secrets.json"]
