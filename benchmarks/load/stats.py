"""What one phase observed, and the figures made from it. Latencies are seconds, kept raw
until the end; percentiles are nearest-rank (an observed value, never an interpolation)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PERCENTILES = (50.0, 95.0, 99.0, 99.9)
#: Requests to paymesh's API; `threeds_page` is the customer on the PSP's page, not the API.
API_OPS = ("create", "capture", "refund", "replay", "healthz")


def percentile(ordered: Sequence[float], pct: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values: Iterable[float]) -> dict[str, Any]:
    """count, p50/p95/p99/p99.9, max and mean, in ms (3 decimals)."""
    ordered = sorted(values)
    figures: dict[str, Any] = {"count": len(ordered)}
    for pct in PERCENTILES:
        figures[f"p{pct:g}"] = _ms(percentile(ordered, pct))
    figures["max"] = _ms(ordered[-1] if ordered else None)
    figures["mean"] = _ms(sum(ordered) / len(ordered) if ordered else None)
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


@dataclass
class Usage:
    """CPU and memory of a set of processes over a phase, from /proc."""

    cpu_s: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0

    def to_dict(self, elapsed: float, payments: int) -> dict[str, Any]:
        return {
            "cpu_s": round(self.cpu_s, 3),
            "cpu_pct": round(100 * self.cpu_s / elapsed, 1) if elapsed else None,
            "cpu_ms_per_payment": round(1000 * self.cpu_s / payments, 3) if payments else None,
            "rss_peak_mb": round(self.rss_peak_mb, 1),
            "rss_end_mb": round(self.rss_end_mb, 1),
        }


@dataclass
class PhaseStats:
    name: str  # warmup | healthz | payments
    target_rate: float
    duration: float
    scheduled: int = 0
    sent: int = 0
    dropped: int = 0
    late: int = 0
    finished: int = 0  # arrivals whose flow ended (answered or failed)
    offered_payments: int = 0  # arrivals that create a payment (all but replays)
    payments: int = 0  # creates answered with a payment: 201, or 402 card/fraud
    succeeded: int = 0  # payments the client saw reach succeeded (or its 3-D Secure done)
    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # Every API answer: its arrival's due time (offset from t0), and its latency.
    api_due: list[float] = field(default_factory=list)
    api_latency: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    injected_ms: float | None = None
    # End to end: due time -> the confirmation recorded by the server (its own timestamp).
    e2e: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    e2e_due: list[float] = field(default_factory=list)
    create_done: list[float] = field(default_factory=list)  # when each create was answered
    e2e_latency: list[float] = field(default_factory=list)
    e2e_expected: int = 0  # payments the client saw succeed
    e2e_read: int = 0  # of which read back (all, unless --confirm-sample caps it)
    e2e_missing: int = 0  # read back with no confirmation recorded
    # Due time -> `payment.succeeded` at the generator's receiver (an HTTP rule target).
    delivered_due: list[float] = field(default_factory=list)
    delivered_latency: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    send_lags: list[float] = field(default_factory=list)
    t0: float = 0.0  # perf_counter of the first due time
    t0_wall: float = 0.0  # time.time() at t0
    elapsed: float = 0.0
    last_answer: float = 0.0
    generator_cpu: float = 0.0
    server: Usage | None = None
    sandbox: Usage | None = None
    samples: list[dict[str, float | None]] = field(default_factory=list)
    settle_wait: float | None = None

    # -- recording (hot path) ---------------------------------------------------------------

    def answered(self, op: str, start: float, done: float, origin: float) -> float:
        """An answer to a request sent (or due) at `start`, for the arrival due at `origin`:
        the timeline files a follow-up under its arrival."""
        latency = done - start
        self.latencies[op].append(latency)
        if op != "threeds_page":
            self.api_due.append(origin - self.t0)
            self.api_latency.append(latency)
        if op == "create":
            self.create_done.append(done - self.t0)
        if done > self.last_answer:
            self.last_answer = done
        return latency

    def delivered(self, due: float, at: float) -> None:
        self.delivered_due.append(due - self.t0)
        self.delivered_latency.append(at - due)

    def recorded(self, flow: str, due_offset: float, latency: float) -> None:
        self.e2e[flow].append(latency)
        self.e2e_due.append(due_offset)
        self.e2e_latency.append(latency)

    # -- figures ------------------------------------------------------------------------------

    @property
    def payments_rate(self) -> float:
        return self.payments / self.elapsed if self.elapsed else 0.0

    @property
    def offered_payments_rate(self) -> float:
        return self.offered_payments / self.duration

    @property
    def requests(self) -> int:
        return len(self.api_latency)

    def api_ms(self) -> dict[str, Any]:
        return summary_ms(self.api_latency)

    def e2e_ms(self) -> dict[str, Any]:
        return summary_ms(self.e2e_latency)

    def delivered_ms(self) -> dict[str, Any]:
        return summary_ms(self.delivered_latency)

    def overhead_ms(self) -> dict[str, Any]:
        return summary_ms(self.overhead)

    def failures(self) -> int:
        return sum(self.errors.values())

    def timeline(self, bucket: float) -> list[dict[str, Any]]:
        """Per `bucket` seconds of due time: answers, their p50/p99, confirmations' p99, and
        the resource samples taken then."""
        series = {
            "api": (self.api_due, self.api_latency),
            "e2e": (self.e2e_due, self.e2e_latency),
            "delivered": (self.delivered_due, self.delivered_latency),
        }
        rows: dict[int, dict[str, list[float]]] = {}
        for name, (dues, latencies) in series.items():
            for due, latency in zip(dues, latencies, strict=True):
                row = rows.setdefault(int(due // bucket), {k: [] for k in series})
                row[name].append(latency)
        out = []
        for key in sorted(rows):
            api, e2e = sorted(rows[key]["api"]), sorted(rows[key]["e2e"])
            delivered = sorted(rows[key]["delivered"])
            out.append(
                {
                    "t": round(key * bucket, 3),
                    "answers": len(api),
                    "p50_ms": _ms(percentile(api, 50)),
                    "p99_ms": _ms(percentile(api, 99)),
                    "e2e_p50_ms": _ms(percentile(e2e, 50)),
                    "e2e_p99_ms": _ms(percentile(e2e, 99)),
                    "delivered_p99_ms": _ms(percentile(delivered, 99)),
                }
            )
        return out

    def throughput(self, bucket: float) -> list[dict[str, float]]:
        """Per `bucket` seconds of the phase, by when things happened (not when they were
        due): creates answered per second, and confirmations recorded per second (due time
        plus end-to-end latency), the work the server finished as it finished it."""
        answered: Counter[int] = Counter(int(done // bucket) for done in self.create_done)
        confirmed: Counter[int] = Counter(
            int((due + latency) // bucket)
            for due, latency in zip(self.e2e_due, self.e2e_latency, strict=True)
        )
        keys = sorted(set(answered) | set(confirmed))
        return (
            [
                {
                    "t": round(key * bucket, 3),
                    "answered_per_s": round(answered[key] / bucket, 3),
                    "confirmed_per_s": round(confirmed[key] / bucket, 3),
                }
                for key in range(keys[0], keys[-1] + 1)
            ]
            if keys
            else []
        )

    def to_dict(self, bucket: float) -> dict[str, Any]:
        lags = sorted(self.send_lags)
        payments = self.payments or self.requests
        doc: dict[str, Any] = {
            "phase": self.name,
            "target_rate": self.target_rate,
            "duration_s": self.duration,
            "arrivals": {
                "scheduled": self.scheduled,
                "sent": self.sent,
                "finished": self.finished,
                "late": self.late,
                "dropped": self.dropped,
            },
            "elapsed_s": round(self.elapsed, 3),
            "requests": self.requests,
            "requests_per_s": round(self.requests / self.elapsed, 1) if self.elapsed else 0.0,
            "latency_ms": self.api_ms(),
            "by_op_ms": {op: summary_ms(v) for op, v in sorted(self.latencies.items())},
            "send_lag_ms": {"p50": _ms(percentile(lags, 50)), "p99": _ms(percentile(lags, 99))},
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "generator_cpu": {
                "cpu_s": round(self.generator_cpu, 3),
                "cpu_pct": round(100 * self.generator_cpu / self.elapsed, 1)
                if self.elapsed
                else None,
            },
            "server": None if self.server is None else self.server.to_dict(self.elapsed, payments),
            "sandbox": None
            if self.sandbox is None
            else self.sandbox.to_dict(self.elapsed, payments),
            "timeline": self.timeline(bucket),
            "throughput": self.throughput(bucket),
            "resource_samples": self.samples,
            "settle_wait_s": None if self.settle_wait is None else round(self.settle_wait, 2),
        }
        if self.name != "healthz":
            doc["offered_payments_per_s"] = round(self.offered_payments_rate, 1)
            doc["payments"] = self.payments
            doc["payments_per_s"] = round(self.payments_rate, 1)
            doc["succeeded"] = self.succeeded
            doc["succeeded_per_s"] = round(self.succeeded / self.elapsed, 1) if self.elapsed else 0
            doc["outcomes"] = dict(self.outcomes)
            doc["e2e_ms"] = {
                **self.e2e_ms(),
                "succeeded": self.e2e_expected,
                "read_back": self.e2e_read,
                "missing": self.e2e_missing,
                "by_flow": {flow: summary_ms(v) for flow, v in sorted(self.e2e.items())},
            }
            doc["delivered_ms"] = {**self.delivered_ms(), "succeeded": self.e2e_expected}
            doc["overhead_ms"] = {**self.overhead_ms(), "injected_psp_ms": self.injected_ms}
        return doc
