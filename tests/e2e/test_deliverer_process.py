"""`paymesh serve` with PAYMESH_DELIVERER_PROCESS: a real server, its real deliverer process,
one SQLite file. What a merchant relies on: a rule saved a moment ago delivers its first
event at the first attempt (signed with the new rule's secret), a deliverer that dies is
replaced and what it left is delivered, and stopping the server stops its deliverer."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.live_server import free_port, live_server

METRICS_TOKEN = "mtok_deliverer_test"


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def deliverer_of(pid: int, within: float = 20.0) -> int:
    """The server's one deliverer child. Waited for: the server answers /readyz before its
    supervisor task has spawned the process (seen under `make test`'s load)."""
    deadline = time.monotonic() + within
    while True:
        found = [c for c in children(pid) if _is_deliverer(c)]
        if len(found) == 1 or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    assert len(found) == 1, f"expected one deliverer under {pid}, found {found}"
    return found[0]


def _is_deliverer(pid: int) -> bool:
    try:
        return b"paymesh.entrypoints.deliverer" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # gone since the parent listed it
        return False


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def until(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "PAYMESH_DATA_DIR": str(data_dir),
            "PAYMESH_DELIVERER_PROCESS": "1",
            "PAYMESH_RATE_LIMIT": "0",
            "PAYMESH_TARGET_ALLOWLIST": "127.0.0.1",
            "PAYMESH_BUS_RETRY_BASE": "0.05",
            "PAYMESH_METRICS_TOKEN": METRICS_TOKEN,
        }
        self.key = (
            subprocess.run(
                [sys.executable, "-m", "paymesh", "keys", "create", "--merchant", "shop"],
                env=self.env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        self.log = data_dir / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "paymesh", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            timeout=30,
            headers={"Authorization": f"Bearer {self.key}"},
        )

        def ready() -> bool:
            try:
                return self.http.get("/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        until(ready, 30)

    def pay(self, amount: int) -> str:
        r = self.http.post(
            "/v1/payments",
            json={
                "amount": amount,
                "currency": "usd",
                "customer_id": "cus_deliverer",
                "payment_method": "pm_card_visa",
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def rule_to(self, url: str, name: str) -> None:
        """A rule sending every `payment.succeeded` to `url` (target id `hook`)."""
        r = self.http.put(
            f"/v1/rules/{name}",
            json={
                "event_pattern": {"detail-type": ["payment.succeeded"]},
                "targets": [{"id": "hook", "type": "http", "url": url}],
            },
        )
        assert r.status_code == 200, r.text

    def confirmed(self, payment_id: str) -> bool:
        r = self.http.get(f"/v1/payments/{payment_id}/notifications")
        return r.status_code == 200 and len(r.json()["data"]) == 1

    def delivery_attempts(self, target: str, result: str) -> float:
        """`paymesh_delivery_attempts_total` for (target, result) in the server's scrape."""
        r = self.http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200, r.text
        for family in text_string_to_metric_families(r.text):
            for sample in family.samples:
                if sample.name == "paymesh_delivery_attempts_total" and sample.labels == {
                    "target": target,
                    "result": result,
                }:
                    return sample.value
        return 0.0

    def deliveries(self, target: str) -> list[tuple[str, int]]:
        with sqlite3.connect(self.data_dir / "paymesh.db") as db:
            return list(
                db.execute("SELECT status, attempts FROM deliveries WHERE target_id = ?", (target,))
            )

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.close()


def test_a_rule_saved_a_moment_ago_delivers_signed_at_the_first_attempt(server: Server) -> None:
    received: list[str] = []

    async def hook(request: Request) -> Response:
        assert request.headers["paymesh-signature"].startswith("t=")
        received.append(request.headers["paymesh-event-id"])
        return Response(b"ok")

    warm = server.pay(600)
    until(lambda: server.confirmed(warm))  # the deliverer is up, with the rules of its start
    with live_server(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        server.rule_to(base + "/hook", "to-hook")
        paid = server.pay(700)  # at once: the deliverer hears of the rule before the event
        until(lambda: len(received) == 1)
        until(lambda: server.confirmed(paid))
    assert server.deliveries("hook") == [("delivered", 1)]
    assert server.deliveries("confirmation") == [("delivered", 1), ("delivered", 1)]


def test_the_server_s_metrics_count_what_its_deliverer_delivered(server: Server) -> None:
    """The deliverer serves no `/metrics`: an operator reading the server's would otherwise
    see no merchant delivery at all in this mode."""

    async def hook(request: Request) -> Response:
        return Response(b"ok")

    warm = server.pay(650)
    # The deliverer is up (under `make test`'s load it can take seconds to start).
    until(lambda: server.confirmed(warm))
    with live_server(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        server.rule_to(base + "/hook", "to-hook")
        paid = [server.pay(1000 + n) for n in range(3)]
        until(lambda: server.deliveries("hook") == [("delivered", 1)] * 3)
        until(lambda: all(server.confirmed(p) for p in paid))
    # Published every 2 s by the deliverer; the server ran none of these deliveries itself.
    until(lambda: server.delivery_attempts("merchant_http", "delivered") == 3, 10)
    assert server.delivery_attempts("send_confirmation", "delivered") == 4  # the warm one too


def test_a_deliverer_that_dies_is_replaced_and_what_it_left_is_delivered(server: Server) -> None:
    entered: list[str] = []
    done: list[str] = []

    async def slow_hook(request: Request) -> Response:
        entered.append(request.headers["paymesh-event-id"])
        await asyncio.sleep(1.0)  # long enough to be killed in the middle of it
        done.append(request.headers["paymesh-event-id"])
        return Response(b"ok")

    with live_server(Starlette(routes=[Route("/hook", slow_hook, methods=["POST"])])) as base:
        server.rule_to(base + "/hook", "slow-hook")
        first = deliverer_of(server.proc.pid)
        paid = server.pay(800)
        until(lambda: len(entered) == 1)
        os.kill(first, signal.SIGKILL)  # mid-delivery: its lease would hold for 60 s
        until(lambda: not alive(first))
        later = server.pay(900)  # routed while no deliverer runs
        # Well inside the dead one's 60 s lease: the server freed it for the next deliverer.
        until(lambda: len(done) >= 2 and server.confirmed(paid) and server.confirmed(later), 15)
        second = deliverer_of(server.proc.pid)
    assert second != first
    assert entered.count(entered[0]) == 2  # the cut attempt was made again, by the new one
    # The cut attempt was never recorded: each delivery shows the one attempt that counted.
    assert server.deliveries("hook") == [("delivered", 1), ("delivered", 1)]
    assert "exited (code -9); starting another" in server.log.read_text()


def test_stopping_the_server_stops_its_deliverer(server: Server) -> None:
    deliverer = deliverer_of(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down, then raises the signal it caught again: -15 is a clean stop.
    assert server.proc.wait(20) in (0, -signal.SIGTERM)
    until(lambda: not alive(deliverer), 10)
    log = server.log.read_text()
    assert "starting another" not in log and "did not stop" not in log


def test_a_sigterm_to_the_whole_group_stops_both_in_order(server: Server) -> None:
    """What a service manager does: SIGTERM to every process. The deliverer waits for its
    server to close the line instead of dying first and being started again."""
    warm = server.pay(650)
    until(lambda: server.confirmed(warm))  # the deliverer is running, not still starting
    deliverer = deliverer_of(server.proc.pid)
    server.proc.send_signal(signal.SIGTERM)
    os.kill(deliverer, signal.SIGTERM)
    assert server.proc.wait(20) in (0, -signal.SIGTERM)
    until(lambda: not alive(deliverer), 10)
    assert "starting another" not in server.log.read_text()


def test_a_server_killed_with_sigkill_takes_its_deliverer_with_it(server: Server) -> None:
    deliverer = deliverer_of(server.proc.pid)
    server.proc.kill()
    server.proc.wait(10)
    until(lambda: not alive(deliverer), 5)
