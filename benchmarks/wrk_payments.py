"""Payments/s, latency and server CPU per payment as issue 18 measures them: wrk, from outside.

Starts an embedded `paymesh serve` (SQLite, its built-in sandboxes; `--sandbox-process` puts
them in their own process) and drives it with wrk (`apt-get install wrk`; C, one thread, so
the load generator costs the machine little): first `GET /healthz`, the baseline of the same
run, then `POST /v1/payments` with a unique idempotency key per request over `--customers`
customers. Each phase is `--duration` seconds at `--connections` connections.

Printed: requests/s of each phase, the payments' p50/p90/p99 from wrk's latency histogram,
non-2xx answers, the ratio payments/s / healthz req/s (issue 18's target: >= 0.15), and the
server's (and the separate sandbox's) CPU per request, from /proc over each phase; and,
from the server's `/metrics` after the payments, how long inline fraud scoring took under
that load (issue 18: p99 <= 2 ms), as the share of scorings within each histogram bucket.

    .venv/bin/python benchmarks/wrk_payments.py                   # 64 connections, 10 s
    .venv/bin/python benchmarks/wrk_payments.py --connections 16 --duration 20 --sandbox-process
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.load.server import ManagedServer, ProcessTree, paymesh_executable

SCORING = "paymesh_fraud_scoring_duration_seconds"

# One thread of wrk: each request is the next of a counter, so keys never repeat in a run.
_PAYMENTS_LUA = """
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"amount":%d,"currency":"usd","customer_id":"cus_%d","payment_method":"pm_card_visa"}',
    1000 + (n % 9000), n % CUSTOMERS)
  local headers = {}
  headers["Authorization"] = "Bearer KEY"
  headers["Content-Type"] = "application/json"
  headers["Idempotency-Key"] = "RUN-" .. n
  return wrk.format("POST", "/v1/payments", headers, body)
end
"""


@dataclass
class Phase:
    path: str
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    server_cpu_s: float
    sandbox_cpu_s: float | None

    @property
    def per_second(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds

    @property
    def server_ms_each(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.requests - self.non_2xx)


def _ms(text: str) -> float:
    value = float(re.sub(r"[a-z]+$", "", text))
    unit = re.search(r"[a-z]+$", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    return value * scale[unit.group(0) if unit else "s"]


def _parse(out: str) -> dict[str, float]:
    """wrk's summary: requests, seconds, non-2xx, socket errors, latency percentiles."""
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if done is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    figures = {
        "requests": float(done.group(1)),
        "seconds": _ms(done.group(2) + done.group(3)) / 1000,
        "non_2xx": 0.0,
        "socket_errors": 0.0,
    }
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        figures["non_2xx"] = float(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        figures["socket_errors"] = float(sum(int(g) for g in m.groups()))
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.MULTILINE)
        figures[f"p{pct}_ms"] = _ms(m.group(1)) if m else float("nan")
    return figures


def scoring_buckets(exposition: str) -> list[tuple[float, float]]:
    """The fraud scoring histogram as (upper bound in s, cumulative count), +Inf last."""
    return sorted(
        (float(sample.labels["le"]), sample.value)
        for family in text_string_to_metric_families(exposition)
        if family.name == SCORING
        for sample in family.samples
        if sample.name == SCORING + "_bucket"
    )


def scoring_summary(buckets: list[tuple[float, float]]) -> dict[str, float | None]:
    """How many scorings, the share within 2 ms, and the bucket bound p99 falls under (a
    histogram tells a bound, not the value)."""
    total = buckets[-1][1] if buckets else 0.0
    if not total:
        return {"count": 0.0, "within_2ms": None, "p99_at_most_ms": None}
    within = next((cum for bound, cum in buckets if bound == 0.002), None)
    p99 = next(bound for bound, cum in buckets if cum >= 0.99 * total)
    return {
        "count": total,
        "within_2ms": None if within is None else within / total,
        "p99_at_most_ms": 1000 * p99,
    }


def _cpu(tree: ProcessTree | None) -> float | None:
    usage = tree.usage() if tree is not None else None
    return usage[0] if usage is not None else None


def run_phase(
    server: ManagedServer, path: str, args: argparse.Namespace, script: Path | None
) -> Phase:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    server_before, sandbox_before = _cpu(server.server_tree), _cpu(server.sandbox_tree)
    out = subprocess.run(
        [*command, server.base_url + path], capture_output=True, text=True, check=True
    ).stdout
    server_after, sandbox_after = _cpu(server.server_tree), _cpu(server.sandbox_tree)
    figures = _parse(out)
    sandbox = (
        sandbox_after - sandbox_before
        if sandbox_after is not None and sandbox_before is not None
        else None
    )
    return Phase(
        path=path,
        requests=int(figures["requests"]),
        seconds=figures["seconds"],
        non_2xx=int(figures["non_2xx"]),
        socket_errors=int(figures["socket_errors"]),
        p50_ms=figures["p50_ms"],
        p90_ms=figures["p90_ms"],
        p99_ms=figures["p99_ms"],
        server_cpu_s=(server_after or 0.0) - (server_before or 0.0),
        sandbox_cpu_s=sandbox,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--sandbox-process", action="store_true")
    parser.add_argument(
        "--deliverer-process",
        action="store_true",
        help="the server's deliveries in a second process (PAYMESH_DELIVERER_PROCESS=1); "
        "its CPU counts as the server's",
    )
    parser.add_argument("--json", type=Path, help="write the figures there")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    # The server inherits this environment; its process tree (deliverer included) is measured.
    os.environ["PAYMESH_DELIVERER_PROCESS"] = "1" if args.deliverer_process else "0"
    metrics_token = os.environ.setdefault("PAYMESH_METRICS_TOKEN", f"mtok_{uuid.uuid4().hex}")
    server = ManagedServer(
        paymesh_executable(),
        startup_timeout=60,
        stop_timeout=10,
        keep_data=False,
        sandbox_process=args.sandbox_process,
    )
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "payments.lua"
            script.write_text(
                _PAYMENTS_LUA.replace("CUSTOMERS", str(args.customers))
                .replace("KEY", server.api_key)
                .replace("RUN", uuid.uuid4().hex)
            )
            health = run_phase(server, "/healthz", args, None)
            time.sleep(2)  # let the health phase's connections close
            payments = run_phase(server, "/v1/payments", args, script)
            exposition = httpx.get(
                server.base_url + "/metrics",
                headers={"Authorization": f"Bearer {metrics_token}"},
                timeout=30,
            )
            exposition.raise_for_status()
            scoring = scoring_summary(scoring_buckets(exposition.text))
    finally:
        server.stop()
    ratio = payments.per_second / health.per_second if health.per_second else 0.0
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration}s, embedded paymesh serve"
        + (" with its deliverer process" if args.deliverer_process else "")
    )
    for phase in (health, payments):
        line = (
            f"{phase.path:14} {phase.per_second:9.1f}/s  p50 {phase.p50_ms:7.1f} ms"
            f"  p90 {phase.p90_ms:7.1f} ms  p99 {phase.p99_ms:7.1f} ms"
            f"  non-2xx {phase.non_2xx}  socket errors {phase.socket_errors}"
            f"  server CPU {phase.server_ms_each:.3f} ms each"
        )
        if phase.sandbox_cpu_s is not None:
            each = 1000 * phase.sandbox_cpu_s / max(1, phase.requests - phase.non_2xx)
            line += f"  sandbox CPU {each:.3f} ms each"
        print(line)
    print(
        f"payments/s / healthz req/s: {ratio:.3f} (target >= 0.15); "
        f"a payment costs the server {payments.server_ms_each / health.server_ms_each:.1f} "
        "health checks of CPU"
    )
    if scoring["count"]:
        within = scoring["within_2ms"]
        print(
            f"inline fraud scoring under this load: {scoring['count']:.0f} scorings, p99 at most "
            f"{scoring['p99_at_most_ms']:g} ms (its histogram bucket), "
            + ("-" if within is None else f"{100 * within:.2f}%")
            + " within 2 ms (target: p99 <= 2 ms)"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "healthz": asdict(health),
                    "payments": asdict(payments),
                    "ratio": ratio,
                    "fraud_scoring": scoring,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
