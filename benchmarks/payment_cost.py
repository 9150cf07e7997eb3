"""Where a payment's CPU goes: server CPU milliseconds per payment, by elimination.

Runs the same open-loop load (a fixed arrival rate, well below saturation) against four
configurations of `paymesh serve`, each in a fresh data dir, in one run:

- full: the default, with the three PSP sandboxes mounted in the server process;
- no rules: the merchant disables every default rule, so the event bus delivers nothing;
- sandbox process: the sandboxes run as their own `paymesh sandbox` process;
- both: sandbox process and no rules.

It reads each process's CPU time from /proc before and after, so the figures are CPU cost,
not latency, and hold up on a busy machine far better than latency does. The ratio column
compares each configuration with `full`.

    python benchmarks/payment_cost.py --rate 150 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
DEFAULT_RULES = (
    "payment-initiated",
    "payment-succeeded",
    "payment-failed",
    "high-risk-transaction",
    "fraud-stream",
)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(rate: float, duration: float, sandbox_process: bool, no_rules: bool) -> dict[str, float]:
    """Start the processes (blocking is fine here), then drive the load on a loop."""
    data = tempfile.mkdtemp(prefix="paymesh-cost-")
    port = 20000 + random.randint(0, 4000)
    env = {**os.environ, "PAYMESH_RATE_LIMIT": "0", "PAYMESH_DATA_DIR": data}
    made = subprocess.run(
        [str(BIN / "paymesh"), "keys", "create", "--merchant", "bench", "--data-dir", data],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    box = None
    if sandbox_process:
        box_port = port + 1
        box = subprocess.Popen(
            [
                str(BIN / "paymesh"),
                "sandbox",
                "--port",
                str(box_port),
                "--webhook-base",
                f"http://127.0.0.1:{port}",
                "--data-dir",
                data,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for psp in ("stripe", "adyen", "paypal"):
            env[f"PAYMESH_{psp.upper()}_API_BASE"] = f"http://127.0.0.1:{box_port}/sandbox/{psp}"
        env["PAYMESH_PAYPAL_TRUSTED_CERT"] = f"{data}/sandbox/paypal-webhook-cert.pem"
        cert = Path(env["PAYMESH_PAYPAL_TRUSTED_CERT"])
        deadline = time.monotonic() + 20
        while not cert.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    server = subprocess.Popen(
        [str(BIN / "paymesh"), "serve", "--port", str(port), "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return asyncio.run(
            load(
                f"http://127.0.0.1:{port}",
                key,
                rate,
                duration,
                no_rules,
                server.pid,
                box.pid if box else None,
            )
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if box:
            box.kill()
            box.wait()


async def load(
    base: str,
    key: str,
    rate: float,
    duration: float,
    no_rules: bool,
    server_pid: int,
    box_pid: int | None,
) -> dict[str, float]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(400):
            try:
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        if no_rules:
            for name in DEFAULT_RULES:  # a merchant's rule of the same name overrides
                body = {
                    "event_pattern": {"source": ["none"]},
                    "state": "DISABLED",
                    "targets": [{"id": "off", "type": "builtin", "name": "analytics"}],
                }
                async with http.put(f"{base}/v1/rules/{name}", json=body) as r:
                    assert r.status == 200, await r.text()
        count = int(rate * duration)
        failures = 0
        server_cpu0 = cpu_seconds(server_pid)
        box_cpu0 = cpu_seconds(box_pid) if box_pid else 0.0
        start = time.perf_counter()

        async def pay(i: int) -> None:
            nonlocal failures
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            body = {
                "amount": 1000 + i % 4000,
                "currency": "usd",
                "customer_id": f"cus_{i}",
                "payment_method": "pm_card_visa",
            }
            async with http.post(
                f"{base}/v1/payments", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
            ) as r:
                await r.read()
                failures += r.status != 201

        await asyncio.gather(*(pay(i) for i in range(count)))
        await asyncio.sleep(1.5)  # the bus and the webhooks finish the tail
        server_ms = (cpu_seconds(server_pid) - server_cpu0) / count * 1000
        box_ms = ((cpu_seconds(box_pid) - box_cpu0) / count * 1000) if box_pid else 0.0
        return {"server_ms": server_ms, "sandbox_ms": box_ms, "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    configs = [
        ("full", False, False),
        ("no rules", False, True),
        ("sandbox process", True, False),
        ("both", True, True),
    ]
    results = {name: run(args.rate, args.duration, box, off) for name, box, off in configs}
    table = Table(title=f"server CPU per payment at {args.rate:.0f}/s ({args.duration:.0f} s)")
    for col in (
        "configuration",
        "server ms/payment",
        "sandbox ms/payment",
        "ratio to full",
        "failures",
    ):
        table.add_column(col, justify="right")
    full = results["full"]["server_ms"]
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['server_ms']:.2f}",
            f"{r['sandbox_ms']:.2f}",
            f"{r['server_ms'] / full:.2f}",
            str(int(r["failures"])),
        )
    Console().print(table)
    print(f"one core at this cost: about {1000 / full:.0f} payments/s in full mode")


if __name__ == "__main__":
    main()
