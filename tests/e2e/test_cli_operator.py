"""The command line as an operator runs it: real `paymesh` processes.

--version; read-only commands that create nothing; `dlq list` across merchants; the three
infrastructure failures (a port in use, a database and a bus that do not answer) as one line
and a non-zero exit; `listen` and `trigger` against a running server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paymesh import __version__
from paymesh.entrypoints.cli_live import EventTail
from tests.integration.conftest import Server, start
from tests.support.live_server import free_port


def paymesh(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    return subprocess.run(
        [sys.executable, "-m", "paymesh", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**clean, **(env or {})},
        check=False,
    )


def one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def closed_port() -> int:
    port = free_port()  # bound and released: nothing listens there now
    return port


def test_version() -> None:
    result = paymesh("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"paymesh {__version__}")


def test_read_only_commands_create_no_data_directory(tmp_path: Path) -> None:
    for args in (("keys", "list"), ("dlq", "list"), ("dlq", "redrive", "del_x", "--merchant", "m")):
        result = paymesh(*args, cwd=tmp_path)
        assert "no paymesh database at paymesh-data/paymesh.db" in one_clear_line(result)
        assert list(tmp_path.iterdir()) == [], args


def test_keys_create_makes_the_database_but_no_sandbox_secrets(tmp_path: Path) -> None:
    created = paymesh("keys", "create", "--merchant", "shop", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("pmk_")
    # The database and its writers' lock file (adapters/sqlite/writer.py): no secrets file.
    made = {p.name for p in (tmp_path / "paymesh-data").iterdir()}
    assert made == {"paymesh.db", "paymesh.db.write.lock"}
    listed = paymesh("keys", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "shop" in listed.stdout


def test_dlq_list_without_a_merchant_lists_every_merchants(tmp_path: Path) -> None:
    for merchant in ("shop-a", "shop-b"):
        assert paymesh("keys", "create", "--merchant", merchant, cwd=tmp_path).returncode == 0
    result = paymesh("dlq", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dead letters" in result.stdout and "merchant" in result.stdout


# -- infrastructure failures: one line, non-zero, no traceback ----------------------------------


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = paymesh("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert one_clear_line(result) == (
        f"error: port {port} on 127.0.0.1 is already in use (another paymesh serve?)"
    )


def test_an_unreachable_database_is_one_line_for_serve_and_for_keys(tmp_path: Path) -> None:
    url = f"postgresql://paymesh:secret@127.0.0.1:{closed_port()}/paymesh"
    served = paymesh("serve", "--port", str(free_port()), "--database", url, cwd=tmp_path)
    line = one_clear_line(served)
    assert line.startswith("error: cannot reach the database at postgresql://paymesh:***@127.0.0.1")
    assert "secret" not in served.stderr  # the password stays out of logs
    listed = paymesh("keys", "list", "--database", url, cwd=tmp_path)
    assert one_clear_line(listed) == "error: cannot reach the database: connection refused"


def test_an_unreachable_bus_is_one_line_for_the_worker(tmp_path: Path) -> None:
    from tests.support.postgres import PostgresUnavailable, running_postgres

    bus = f"nats://127.0.0.1:{closed_port()}"
    sandboxes = {
        f"PAYMESH_{psp}_API_BASE": f"http://127.0.0.1:9/sandbox/{psp.lower()}"
        for psp in ("STRIPE", "ADYEN", "PAYPAL")
    }
    try:
        with running_postgres() as pg:  # the database answers; only the bus is down
            result = paymesh(
                "worker", "--database", pg.dsn(), "--bus", bus, env=sandboxes, cwd=tmp_path
            )
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL here: {exc}")
    line = one_clear_line(result)
    assert line.startswith(f"error: cannot reach the NATS bus at {bus}: "), line


# -- listen and trigger against a running server ------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("operator"))


def test_trigger_makes_the_real_payment_and_listen_tails_only_matching_events(
    live: Server, tmp_path: Path
) -> None:
    env = {"PAYMESH_API_BASE": live.base, "PAYMESH_API_KEY": live.key}
    pattern = tmp_path / "pattern.json"
    pattern.write_text(json.dumps({"detail-type": ["payment.succeeded", "refund.succeeded"]}))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYMESH_")}
    listener = subprocess.Popen(
        [sys.executable, "-m", "paymesh", "listen", "--pattern", f"@{pattern}", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, **env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert listener.stderr is not None
        assert "listening to" in listener.stderr.readline()  # its "now" is marked
        failed = paymesh("trigger", "payment.failed", env=env)
        assert failed.returncode == 0, failed.stderr
        assert "payment.failed" in failed.stdout
        refunded = paymesh("trigger", "refund.succeeded", env=env)
        assert refunded.returncode == 0, refunded.stderr
        timeline = refunded.stdout
        assert "payment.succeeded" in timeline and "refund.succeeded" in timeline
        out, _ = listener.communicate(timeout=30)
    finally:
        listener.kill()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["detail-type"] for e in events] == ["payment.succeeded", "refund.succeeded"]
    assert events[0]["detail"]["amount"] == 2000


def test_trigger_refuses_an_event_it_cannot_make(live: Server) -> None:
    result = paymesh(
        "trigger", "payment.disputed", env={"PAYMESH_API_BASE": live.base, "PAYMESH_API_KEY": "x"}
    )
    assert one_clear_line(result).startswith("error: cannot trigger 'payment.disputed'")


def test_the_tail_pages_back_through_a_burst_and_prints_oldest_first() -> None:
    log: list[dict[str, str]] = []  # newest first, as GET /v1/events

    def fetch(after: str | None) -> tuple[list[dict[str, str]], bool]:
        start_at = 0 if after is None else [e["id"] for e in log].index(after) + 1
        page = log[start_at : start_at + 3]
        return page, start_at + 3 < len(log)

    tail = EventTail(fetch)
    log[:0] = [{"id": "evt_1"}]
    assert tail.poll() == []  # the first poll marks "now"
    log[:0] = [{"id": f"evt_{n}"} for n in range(9, 1, -1)]  # 8 new: more than a page
    assert [e["id"] for e in tail.poll()] == [f"evt_{n}" for n in range(2, 10)]
    assert tail.poll() == []
