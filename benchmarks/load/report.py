"""The tables printed at the end, and the JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .bench import RateResult
from .stats import PhaseStats

OUTCOME_LABELS = (
    ("succeeded", "ok"),
    ("declined", "decl"),
    ("3ds_completed", "3ds"),
    ("captured", "capt"),
    ("refunded", "refd"),
    ("replayed", "repl"),
    ("blocked", "FRAUD-BLOCKED"),
    ("review", "REVIEW"),
    ("pending", "pending"),
    ("processing", "processing"),
    ("replay_skipped", "repl-skipped"),
)


def render(console: Console, results: Sequence[RateResult], header: str) -> None:
    console.print(header, highlight=False)
    console.print(latency_table(results))
    console.print(payments_table(results))
    console.print(floor_table(results))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _errors(stats: PhaseStats) -> str:
    return ", ".join(f"{k} x{v}" for k, v in stats.errors.most_common()) or "-"


def latency_table(results: Sequence[RateResult]) -> Table:
    table = Table(title="API latency from the scheduled send time (ms)", title_justify="left")
    for name in ("rate/s", "phase", "sent", "late/drop", "answers/s", "payments/s"):
        table.add_column(name, justify="right")
    for name in ("p50", "p95", "p99", "p99.9", "max"):
        table.add_column(name, justify="right")
    table.add_column("errors", overflow="fold")
    for result in results:
        for stats in (result.healthz, result.payments):
            latency = stats.api_ms()
            answers = stats.requests / stats.elapsed if stats.elapsed else 0.0
            payments = "-" if stats.name == "healthz" else f"{stats.payments_rate:.1f}"
            table.add_row(
                f"{result.rate:g}",
                stats.name,
                str(stats.sent),
                f"{stats.late}/{stats.dropped}",
                f"{answers:.1f}",
                payments,
                *(_ms(latency[key]) for key in ("p50", "p95", "p99", "p99.9", "max")),
                _errors(stats),
            )
    return table


def payments_table(results: Sequence[RateResult]) -> Table:
    injected = results[0].payments.injected_ms if results else None
    title = (
        "Payments (ms). e2e: due time -> confirmation recorded (the server's timestamp, read "
        "back); delivered: due time -> payment.succeeded at the generator's rule target; "
        f"overhead: create latency - {'?' if injected is None else f'{injected:g}'} ms "
        "injected at the PSP"
    )
    table = Table(title=title, title_justify="left")
    for name in ("rate/s", "e2e p50", "e2e p99", "e2e p99.9", "recorded/ok"):
        table.add_column(name, justify="right")
    for name in ("delivered p50", "delivered p99", "overhead p50", "overhead p99"):
        table.add_column(name, justify="right")
    table.add_column("outcomes", overflow="fold")
    for result in results:
        stats = result.payments
        e2e, delivered, over = stats.e2e_ms(), stats.delivered_ms(), stats.overhead_ms()
        outcomes = " ".join(
            f"{label} {stats.outcomes[key]}" for key, label in OUTCOME_LABELS if stats.outcomes[key]
        )
        read = f"{e2e['count']}/{stats.e2e_expected}"
        if stats.e2e_read < stats.e2e_expected:
            read += f" ({stats.e2e_read} read)"
        table.add_row(
            f"{result.rate:g}",
            _ms(e2e["p50"]),
            _ms(e2e["p99"]),
            _ms(e2e["p99.9"]),
            read,
            _ms(delivered["p50"]),
            _ms(delivered["p99"]),
            _ms(over["p50"] if stats.injected_ms is not None else None),
            _ms(over["p99"] if stats.injected_ms is not None else None),
            outcomes or "-",
        )
    return table


def floor_table(results: Sequence[RateResult]) -> Table:
    table = Table(
        title="Against the /healthz floor (payments figure / healthz figure), and resources "
        "(CPU % of one core: healthz -> payments phase)",
        title_justify="left",
    )
    for name in ("rate/s", "p50", "p95", "p99", "p99.9", "e2e p50", "e2e p99"):
        table.add_column(name, justify="right")
    for name in ("ovh p50", "ovh p99", "server CPU", "server RSS MB", "sandbox CPU"):
        table.add_column(name, justify="right")
    for name in ("gen CPU", "srv ms/pay"):
        table.add_column(name, justify="right")
    for result in results:
        r = result.ratios()
        hz, pay = result.healthz, result.payments
        table.add_row(
            f"{result.rate:g}",
            *(_x(r[key]) for key in ("p50", "p95", "p99", "p99.9", "e2e_p50", "e2e_p99")),
            _x(r["overhead_p50"] if pay.injected_ms is not None else None),
            _x(r["overhead_p99"] if pay.injected_ms is not None else None),
            _pair(hz, pay, "server"),
            "-" if pay.server is None else f"{pay.server.rss_peak_mb:.0f}",
            _pair(hz, pay, "sandbox"),
            f"{_pct(hz.generator_cpu, hz.elapsed)} -> {_pct(pay.generator_cpu, pay.elapsed)}",
            "-"
            if pay.server is None or not pay.payments
            else f"{1000 * pay.server.cpu_s / pay.payments:.2f}",
        )
    return table


def _pct(cpu: float, elapsed: float) -> str:
    return f"{100 * cpu / elapsed:.0f}%" if elapsed else "-"


def _pair(healthz: PhaseStats, payments: PhaseStats, tree: str) -> str:
    before, after = getattr(healthz, tree), getattr(payments, tree)
    if before is None or after is None:
        return "-"
    return f"{_pct(before.cpu_s, healthz.elapsed)} -> {_pct(after.cpu_s, payments.elapsed)}"


def write_json(
    path: Path,
    settings: dict[str, Any],
    environment: dict[str, Any],
    target: dict[str, Any],
    results: Sequence[RateResult],
    bucket: float,
) -> None:
    document = {
        "settings": settings,
        "environment": environment,
        "target": target,
        "runs": [result.to_dict(bucket) for result in results],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
