"""One rate after another: warm-up, the `/healthz` floor, then the payment mix; then wait for
the confirmations and check a sample of them against the server's own records."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .clients import CLIENTS, LoadClient
from .flows import FlowRunner, Replayable, Succeeded
from .openloop import OpenLoop
from .progress import SweepProgress
from .receiver import ConfirmationReceiver
from .server import ProcessTree
from .stats import PhaseStats, Usage, ratio
from .target import TargetSetup
from .workload import Arrival, Population, Workload, healthz_arrivals

IDLE_CPU_SHARE = 0.05  # a server under 5% of a core counts as idle between phases
SAMPLE_EVERY = 0.5  # seconds between CPU/RSS samples during a phase
QUIET = 2.0  # seconds without a delivery after which the rest are taken as lost


@dataclass(frozen=True)
class Settings:
    rates: list[float]
    mix: dict[str, float]
    client: str
    duration: float
    warmup: float
    max_inflight: int
    connections: int | None
    timeout: float
    late_ms: float
    settle_timeout: float
    receiver: bool
    delivery_timeout: float
    confirm_sample: int
    psp_latency_ms: int
    psp_weights: dict[str, int] | None
    customers: int
    bucket: float
    seed: int


@dataclass
class Target:
    setup: TargetSetup
    server: ProcessTree | None  # None: not ours to watch (an external server, no --watch-pid)
    sandbox: ProcessTree | None
    managed: bool


@dataclass
class RateResult:
    rate: float
    healthz: PhaseStats
    payments: PhaseStats

    def ratios(self) -> dict[str, float | None]:
        """Each payments figure over the same figure of the healthz floor at this rate."""
        floor, pay = self.healthz.api_ms(), self.payments.api_ms()
        e2e, over = self.payments.e2e_ms(), self.payments.overhead_ms()
        out: dict[str, float | None] = {
            key: ratio(pay[key], floor[key]) for key in ("p50", "p95", "p99", "p99.9")
        }
        delivered = self.payments.delivered_ms()
        for key in ("p50", "p99"):
            out[f"e2e_{key}"] = ratio(e2e[key], floor[key])
            out[f"delivered_{key}"] = ratio(delivered[key], floor[key])
            out[f"overhead_{key}"] = ratio(over[key], floor[key])
        out["payments_per_s_vs_offered"] = ratio(
            self.payments.payments_rate, self.payments.offered_payments_rate
        )
        for name in ("server", "sandbox"):
            pay_usage, floor_usage = getattr(self.payments, name), getattr(self.healthz, name)
            if pay_usage is not None and floor_usage is not None:
                out[f"{name}_cpu_per_request"] = ratio(
                    pay_usage.cpu_s / max(1, self.payments.payments),
                    floor_usage.cpu_s / max(1, self.healthz.requests),
                )
                out[f"{name}_rss_peak"] = ratio(pay_usage.rss_peak_mb, floor_usage.rss_peak_mb)
        out["generator_cpu_per_request"] = ratio(
            self.payments.generator_cpu / max(1, self.payments.payments),
            self.healthz.generator_cpu / max(1, self.healthz.requests),
        )
        return out

    def to_dict(self, bucket: float) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "healthz": self.healthz.to_dict(bucket),
            "payments": self.payments.to_dict(bucket),
            "ratios": self.ratios(),
        }


class Benchmark:
    def __init__(
        self,
        settings: Settings,
        target: Target,
        progress: SweepProgress,
        receiver: ConfirmationReceiver | None,
        run: str,
    ) -> None:
        self._s = settings
        self._target = target
        self._progress = progress
        self._receiver = receiver
        self._rng = random.Random(settings.seed)
        population = Population(settings.customers, settings.mix, settings.seed)
        self.population_size = population.size
        self._workload = Workload(
            settings.mix, population, target.setup.api_key, run, settings.seed
        )
        self._replayable: deque[Replayable] = deque(maxlen=2000)
        self.unconfirmed = 0

    async def run(self) -> list[RateResult]:
        results = []
        for rate in self._s.rates:
            client = CLIENTS[self._s.client](
                self._target.setup.base_url, self._pool_size(rate), self._s.timeout
            )
            try:
                results.append(await self._run_rate(client, rate))
            finally:
                await client.aclose()
        return results

    def _pool_size(self, rate: float) -> int:
        if self._s.connections:
            return self._s.connections
        # Enough connections for ~100 ms of latency at this rate (Little's law) before
        # requests wait in the client; more makes httpx's pool slower.
        return max(32, min(self._s.max_inflight, math.ceil(rate / 10)))

    async def _run_rate(self, client: LoadClient, rate: float) -> RateResult:
        s = self._s
        if s.warmup > 0:
            # Opens the pool's connections and warms the server's code paths.
            warm = self._workload.payments(math.ceil(rate * s.warmup))
            await self._phase(client, "warmup", warm, rate, s.warmup)
        waited = await self._settle()
        healthz, _ = await self._phase(
            client, "healthz", healthz_arrivals(self._count(rate)), rate, s.duration
        )
        healthz.settle_wait = waited
        waited = await self._settle()
        arrivals = self._workload.payments(self._count(rate))
        payments, succeeded = await self._phase(client, "payments", arrivals, rate, s.duration)
        payments.settle_wait = waited
        await self._drain(payments)
        # Idle first: a confirmation not recorded by then is missing, not late.
        await self._settle()
        await self._read_confirmations(payments, succeeded)
        self._progress.note(_one_line(rate, healthz, payments))
        return RateResult(rate, healthz, payments)

    def _count(self, rate: float) -> int:
        return max(1, round(rate * self._s.duration))

    async def _phase(
        self,
        client: LoadClient,
        name: str,
        arrivals: Sequence[Arrival],
        rate: float,
        duration: float,
    ) -> tuple[PhaseStats, list[Succeeded]]:
        stats = PhaseStats(name, rate, duration, injected_ms=self._target.setup.injected_ms)
        stats.scheduled = len(arrivals)
        stats.offered_payments = sum(1 for a in arrivals if a.flow not in ("replay", "healthz"))
        runner = FlowRunner(
            client,
            stats,
            self._workload,
            self._receiver if name == "payments" else None,
            self._replayable,
            self._s.late_ms / 1000,
            self._rng,
        )
        loop = OpenLoop(stats, runner.run, self._s.max_inflight)
        before = self._usage()
        sampler = asyncio.get_running_loop().create_task(self._sample(stats, before))
        try:
            async with self._progress.phase(f"{name} {rate:g}/s", stats, lambda: loop.inflight):
                # A few ms of head start so arrival 0 is not born late.
                stats.t0 = time.perf_counter() + 0.005
                stats.t0_wall = time.time() + (stats.t0 - time.perf_counter())
                await loop.run(arrivals, rate, stats.t0)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        after = self._usage()
        for index, tree in enumerate(("server", "sandbox")):
            if before[index] is not None and after[index] is not None:
                usage = Usage(cpu_s=after[index][0] - before[index][0], rss_end_mb=after[index][1])
                peaks = [s.get(f"{tree}_rss_mb") or 0.0 for s in stats.samples]
                usage.rss_peak_mb = max([after[index][1], *peaks])
                setattr(stats, tree, usage)
        return stats, runner.succeeded

    def _usage(self) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
        server, sandbox = self._target.server, self._target.sandbox
        return (
            None if server is None else server.usage(),
            None if sandbox is None else sandbox.usage(),
        )

    async def _sample(self, stats: PhaseStats, first: tuple[Any, Any]) -> None:
        previous, previous_t = first, time.perf_counter()
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            now, now_t = self._usage(), time.perf_counter()
            sample: dict[str, float | None] = {"t": round(now_t - stats.t0, 3)}
            for index, tree in enumerate(("server", "sandbox")):
                if now[index] is None or previous[index] is None:
                    continue
                cpu = (now[index][0] - previous[index][0]) / (now_t - previous_t)
                sample[f"{tree}_cpu_pct"] = round(100 * cpu, 1)
                sample[f"{tree}_rss_mb"] = round(now[index][1], 1)
            stats.samples.append(sample)
            previous, previous_t = now, now_t

    async def _drain(self, stats: PhaseStats) -> None:
        """Wait for the `payment.succeeded` deliveries still on their way, until all are in,
        none came for `QUIET` s, or `--e2e-timeout` runs out."""
        if self._receiver is None:
            return
        started = time.perf_counter()
        self._progress.status("waiting for payment.succeeded deliveries")
        while len(stats.delivered_latency) < stats.e2e_expected:
            now = time.perf_counter()
            quiet = now - max(self._receiver.last_arrival, stats.last_answer)
            if now - started > self._s.delivery_timeout or quiet > QUIET:
                break
            await asyncio.sleep(0.1)
        self.unconfirmed += self._receiver.forget()
        self._progress.status("")

    async def _read_confirmations(self, stats: PhaseStats, succeeded: list[Succeeded]) -> None:
        """End to end: when the server recorded each succeeded payment's confirmation (its own
        timestamp, ms; truncated, so up to 1 ms early) minus the payment's due time. One clock:
        the server must run on this machine. All of them, or `--confirm-sample` at random."""
        if not succeeded:
            return
        sample = succeeded
        if 0 < self._s.confirm_sample < len(succeeded):
            sample = self._rng.sample(succeeded, self._s.confirm_sample)
        self._progress.status(f"reading {len(sample)} recorded confirmations")
        recorded = await self._target.setup.confirmations([p.payment_id for p in sample])
        stats.e2e_read = len(sample)
        for payment in sample:
            at = recorded.get(payment.payment_id)
            if at is None:
                stats.e2e_missing += 1
            else:
                stats.recorded(payment.flow, payment.due_offset, at - payment.due_wall)
        self._progress.status("")

    async def _settle(self) -> float:
        """Wait for the server to go idle, so one phase's backlog (the outbox dispatcher,
        fraud stream, webhooks) is not billed to the next phase. Returns the seconds waited."""
        started = time.monotonic()
        if self._target.server is None:
            # Not our process, so we cannot watch it: a fixed pause is all we have.
            await asyncio.sleep(1.0)
            return 1.0
        self._progress.status("waiting for the server to go idle")
        window = 0.25
        while time.monotonic() - started < self._s.settle_timeout:
            before = self._busy()
            await asyncio.sleep(window)
            if self._busy() - before < IDLE_CPU_SHARE * window:
                break
        self._progress.status("")
        return time.monotonic() - started

    def _busy(self) -> float:
        return sum(u[0] for u in self._usage() if u is not None)


def _one_line(rate: float, healthz: PhaseStats, payments: PhaseStats) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    floor, pay, e2e = healthz.api_ms(), payments.api_ms(), payments.e2e_ms()
    return (
        f"{rate:g}/s: {payments.payments_rate:.1f} payments/s, "
        f"API p50 {ms(pay['p50'])} p99 {ms(pay['p99'])} ms "
        f"(healthz p50 {ms(floor['p50'])} p99 {ms(floor['p99'])}), "
        f"e2e p50 {ms(e2e['p50'])} p99 {ms(e2e['p99'])} ms, "
        f"{payments.failures()} errors, {payments.outcomes['blocked']} fraud-blocked"
    )
