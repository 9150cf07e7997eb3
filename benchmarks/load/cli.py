"""Flags, the target (a server of our own, or one running), and `main`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import os
import platform
import signal
import sys
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from .bench import Benchmark, RateResult, Settings, Target
from .clients import CLIENTS, client_label
from .progress import SweepProgress
from .receiver import ConfirmationReceiver
from .report import render, write_json
from .server import ManagedServer, ProcessTree, SetupError, paymesh_executable
from .target import TargetSetup
from .workload import default_customers, parse_mix

T = TypeVar("T")
DEFAULT_PSPS = "stripe=50,adyen=30,paypal=20"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Open-loop load test of the paymesh payment API (a realistic mix of "
        "flows, end-to-end confirmations, platform overhead) against a GET /healthz floor."
    )
    add = parser.add_argument
    add("--rate", type=float, default=100.0, help="arrivals/s (default 100)")
    add("--sweep", type=_rate_list, help="rates to run in turn, e.g. 50,100,200")
    add("--duration", type=float, default=10.0, help="seconds per measured phase")
    add("--warmup", type=float, default=2.0, help="uncounted seconds of payments first")
    add(
        "--mix",
        default="realistic",
        nargs="?",
        const="realistic",
        help="realistic (default), success (pure successes), or weights of the flows "
        "success,decline,threeds,manual,refund,replay, e.g. success=90,decline=10",
    )
    add("--json", type=Path, metavar="FILE", help="write all figures as JSON")
    add("--plots", type=Path, metavar="DIR", help="write PNG plots there (needs matplotlib)")
    add("--base-url", help="use a running server instead of starting one")
    add("--api-key", help="secret key for --base-url")
    add(
        "--sandbox-url",
        help="where the PSP sandboxes are, for latency injection: "
        "http://127.0.0.1:SANDBOX_PORT/sandbox (`paymesh serve --sandbox-port`)",
    )
    add(
        "--watch-pid",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="with --base-url: a server process (and its children) to measure CPU/RSS of "
        "and to wait on between phases; repeatable",
    )
    add(
        "--receiver-host",
        default="127.0.0.1",
        help="address the payment.succeeded receiver listens on, as the server reaches it",
    )
    add(
        "--no-receiver",
        action="store_true",
        help="no rule sending payment.succeeded to the generator (no `delivered` figure)",
    )
    add(
        "--delivery-timeout",
        type=float,
        default=15.0,
        help="max wait for payment.succeeded deliveries after a phase, s",
    )
    add(
        "--confirm-sample",
        type=int,
        default=0,
        help="read back at most N recorded confirmations per rate, at random (default 0: all)",
    )
    add(
        "--psp-latency-ms",
        type=int,
        default=20,
        help="latency injected in each sandbox call (default 20); overhead subtracts it",
    )
    add(
        "--psps",
        default=DEFAULT_PSPS,
        help=f"routing weights over the PSPs (default {DEFAULT_PSPS}); `keep` leaves the "
        "server's routing table alone",
    )
    add("--customers", type=int, help="synthetic customers (default: 100 s of the top rate)")
    add("--paymesh", help="paymesh executable to start (default: the venv's)")
    add("--keep-data", action="store_true", help="keep the server's dir and log")
    add(
        "--sandbox-process",
        action="store_true",
        help="run the PSP sandboxes as their own `paymesh sandbox` process",
    )
    add("--client", choices=sorted(CLIENTS), default="aiohttp", help="aiohttp or httpx")
    add("--max-inflight", type=int, default=2000, help="arrivals in flight beyond which, drop")
    add("--connections", type=int, help="client pool size (default: rate/10, at least 32)")
    add("--timeout", type=float, default=10.0, help="per-request timeout, s")
    add("--late-ms", type=float, default=10.0, help="send lag counted late")
    add("--settle-timeout", type=float, default=10.0, help="max idle wait, s")
    add("--startup-timeout", type=float, default=30.0, help="server start, s")
    add("--bucket", type=float, default=0.5, help="timeline bucket, s")
    add("--no-progress", action="store_true", help="no progress bar")
    add("--seed", type=int, default=1, help="seed for customers, amounts and the mix")
    args = parser.parse_args(argv)
    if args.base_url and not args.api_key:
        parser.error("--base-url needs --api-key")
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    if args.plots and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plots needs matplotlib (the dev extras: pip install -e '.[dev]')")
    try:
        args.mix_weights = parse_mix(args.mix)
        args.psp_weights = None if args.psps == "keep" else _psp_weights(args.psps)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _rate_list(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("expected positive rates, e.g. 50,100,200")
    return rates


def _psp_weights(text: str) -> dict[str, int]:
    weights = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        weights[name.strip()] = int(value or 1)
    if not any(weights.values()):
        raise ValueError("--psps needs a positive weight")
    return weights


def _settings(args: argparse.Namespace) -> Settings:
    rates = args.sweep or [args.rate]
    return Settings(
        rates=rates,
        mix=args.mix_weights,
        client=args.client,
        duration=args.duration,
        warmup=args.warmup,
        max_inflight=args.max_inflight,
        connections=args.connections,
        timeout=args.timeout,
        late_ms=args.late_ms,
        settle_timeout=args.settle_timeout,
        receiver=not args.no_receiver,
        delivery_timeout=args.delivery_timeout,
        confirm_sample=args.confirm_sample,
        psp_latency_ms=args.psp_latency_ms,
        psp_weights=args.psp_weights,
        customers=args.customers or default_customers(max(rates)),
        bucket=args.bucket,
        seed=args.seed,
    )


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[Target]:
    if args.base_url:
        base = args.base_url.rstrip("/")
        if not args.sandbox_url:
            raise SystemExit("--base-url needs --sandbox-url: the sandboxes have their own port")
        setup = TargetSetup(base, args.api_key, args.sandbox_url)
        server = ProcessTree(args.watch_pid) if args.watch_pid else None
        yield Target(setup, server, None, managed=False)
        return
    server = ManagedServer(
        args.paymesh or paymesh_executable(),
        args.startup_timeout,
        stop_timeout=10.0,
        keep_data=args.keep_data,
        sandbox_process=args.sandbox_process,
    )
    try:
        server.start()
        setup = TargetSetup(server.base_url, server.api_key, server.sandbox_url)
        yield Target(setup, server.server_tree, server.sandbox_tree, managed=True)
    finally:
        server.stop()


async def _measure(
    settings: Settings, target: Target, progress: SweepProgress, receiver_host: str
) -> tuple[list[RateResult], Benchmark]:
    run = uuid.uuid4().hex[:8]
    receiver = ConfirmationReceiver(receiver_host) if settings.receiver else None
    url = await receiver.start() if receiver else None
    try:
        progress.status("configuring the server")
        await target.setup.apply(settings.psp_weights, settings.psp_latency_ms, url, run)
        if target.setup.rule is None and receiver is not None:
            await receiver.stop()
            receiver = None
        bench = Benchmark(settings, target, progress, receiver, run)
        try:
            return await bench.run(), bench
        finally:
            if not target.managed:
                await target.setup.restore()
    finally:
        if receiver is not None:
            await receiver.stop()


def _run_async(coro: Coroutine[Any, Any, T]) -> tuple[T, str]:
    try:
        import uvloop  # the generator must stay light: the server shares our 2 cores
    except ImportError:
        return asyncio.run(coro), "asyncio"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro), "uvloop"


def _exit_on_sigterm() -> None:
    # Default SIGTERM handling would end us without running `finally`, and leave our server
    # running and its data dir behind; exiting normally cleans up.
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _server_label(args: argparse.Namespace) -> str:
    if args.base_url:
        return f"external {args.base_url}"
    sandbox = "own process" if args.sandbox_process else "in-process"
    return f"managed paymesh serve (sandboxes {sandbox})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    settings = _settings(args)
    console = Console(width=None if sys.stdout.isatty() else 180)
    status_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)
    load_before = os.getloadavg()
    phases = len(settings.rates) * (3 if settings.warmup > 0 else 2)
    try:
        with (
            _target(args) as target,
            SweepProgress(status_console, phases, enabled=not args.no_progress) as progress,
        ):
            (results, bench), loop_name = _run_async(
                _measure(settings, target, progress, args.receiver_host)
            )
            setup = target.setup
    except SetupError as exc:
        console.print(f"[red]setup failed:[/red] {exc}", markup=True, highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; server stopped")
        return 130
    environment = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "event_loop": loop_name,
        "client": client_label(settings.client),
        "server": _server_label(args),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    target_doc = {
        "injected_psp_latency_ms": setup.injected_ms,
        "routing": setup.routing,
        "e2e_rule": setup.rule,
        "customers": bench.population_size,
        # Awaited payment.succeeded deliveries that never reached the receiver (a payment
        # that did not succeed, or a delivery still queued after --delivery-timeout).
        "deliveries_not_received": bench.unconfirmed,
        "notes": setup.notes,
    }
    mix = ", ".join(f"{k} {v:g}" for k, v in settings.mix.items())
    header = (
        f"{environment['server']} · {environment['cpu_count']} CPUs · {loop_name} · "
        f"{environment['client']} · load avg {load_before[0]:.2f} · mix: {mix} · "
        f"PSPs: {args.psps} · injected PSP latency {setup.injected_ms} ms · "
        f"{bench.population_size} customers"
    )
    render(console, results, header)
    for note in setup.notes:
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    _warn_busy(console, settings, results)
    if args.json:
        write_json(
            args.json,
            dataclasses.asdict(settings),
            environment,
            target_doc,
            results,
            settings.bucket,
        )
        console.print(f"JSON: {args.json}")
    if args.plots:
        from .plots import write_plots

        paths = write_plots(args.plots, results, settings.bucket, header)
        console.print("plots: " + ", ".join(str(p) for p in paths))
    # A phase where nothing succeeded measured nothing (a wrong key, a dead route): fail
    # loudly rather than print a table of fast errors.
    ok = all(r.healthz.statuses["healthz 200"] and r.payments.payments for r in results)
    return 0 if ok else 1


def _warn_busy(console: Console, settings: Settings, results: Sequence[RateResult]) -> None:
    for stats in (s for r in results for s in (r.healthz, r.payments)):
        if stats.settle_wait is not None and stats.settle_wait >= settings.settle_timeout:
            console.print(
                f"[yellow]warning:[/yellow] the server was still busy when the {stats.name} "
                f"phase at {stats.target_rate:g}/s began (backlog from the phase before)"
            )
