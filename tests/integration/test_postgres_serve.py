"""`paymesh serve --database postgresql://…`: the same API on PostgreSQL, and two servers on
one database keeping idempotency and the payments' state between them."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import Server, start
from tests.support.postgres import PostgresServer

PAY = {"amount": 4200, "currency": "eur", "customer_id": "cus_pg", "payment_method": "pm_card_visa"}


@pytest.fixture
def dsn(postgres: PostgresServer) -> str:
    name = f"serve_{uuid.uuid4().hex[:10]}"
    return asyncio.run(postgres.create_database(name))


def test_a_server_on_postgres_takes_pays_refunds_and_remembers(tmp_path: Path, dsn: str) -> None:
    servers = start(tmp_path / "a", database=dsn)
    server = next(servers)
    with server.client() as c:
        paid = c.post("/v1/payments", json=PAY, headers={"Idempotency-Key": "pg-1"})
        assert paid.status_code == 201 and paid.json()["status"] == "succeeded"
        refund = c.post(f"/v1/payments/{paid.json()['id']}/refunds", json={"amount": 1200})
        assert refund.status_code == 201 and refund.json()["status"] == "succeeded"
    servers.close()
    servers = start(tmp_path / "b", database=dsn)  # another data dir: the state is in PG
    server = next(servers)
    try:
        with server.client() as c:
            again = c.post("/v1/payments", json=PAY, headers={"Idempotency-Key": "pg-1"})
            assert again.status_code == 200 and again.json()["id"] == paid.json()["id"]
            assert again.headers["idempotent-replayed"] == "true"
            stored = c.get(f"/v1/payments/{paid.json()['id']}").json()
            assert (stored["status"], stored["amount_refunded"]) == ("partially_refunded", 1200)
            kinds = [
                e["detail-type"]
                for e in c.get(f"/v1/payments/{paid.json()['id']}/events").json()["data"]
            ]
            assert kinds[:2] == ["payment.initiated", "payment.succeeded"]
            assert "refund.succeeded" in kinds
    finally:
        servers.close()


def test_two_servers_on_one_database_make_one_payment_per_key(tmp_path: Path, dsn: str) -> None:
    first_servers, second_servers = (
        start(tmp_path / "a", database=dsn),
        start(tmp_path / "b", database=dsn),
    )
    first, second = next(first_servers), next(second_servers)
    try:
        keys = [f"dup-{i}" for i in range(10)]

        def send(args: tuple[Server, str]) -> tuple[int, str]:
            server, key = args
            with server.client(server.key) as c:
                r = c.post(
                    "/v1/payments",
                    json={**PAY, "customer_id": f"cus_{key}"},
                    headers={"Idempotency-Key": key},
                )
                return r.status_code, r.json().get("id") or r.json()["error"]["code"]

        # Each key goes to both servers at once, as one merchant (the first server's API key
        # is valid on both: the keys live in the shared database).
        second.key = first.key
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, [(s, k) for k in keys for s in (first, second)]))
        by_key: dict[str, set[str]] = {}
        for (status, ident), key in zip(answers, [k for k in keys for _ in (0, 1)], strict=True):
            assert status in (200, 201, 409), (status, ident)
            if status != 409:
                by_key.setdefault(key, set()).add(ident)
        assert all(len(ids) == 1 for ids in by_key.values())
        with first.client() as c:
            listed = c.get("/v1/payments", params={"limit": 100}).json()["data"]
        assert len(listed) == len(keys)
    finally:
        first_servers.close()
        second_servers.close()
