"""Memory soak (issue 18): does an embedded `paymesh serve` keep its RSS steady over many
payments, and how much does its data dir grow per payment?

    python benchmarks/memory_soak.py                                  # 1,000,000 payments
    python benchmarks/memory_soak.py --payments 50000 --rate 60 --customers 5000 \
        --json soak.json --plot soak.png

It starts `paymesh serve` (SQLite, the PSP sandboxes built in; `--sandbox-process` runs them
as their own process, leaving paymesh's memory alone in the server) in a temp data dir, as
`payments_load.py` does, and sends successful payments (`--mix success` of that generator:
its customers, one fresh Idempotency-Key per request) at `--rate` per second with at most
`--concurrency` in flight, spread over Stripe, Adyen and PayPal. Every `--every` payments it
samples the server's RSS (`/proc`) and the data dir's size (the server's log left out, and
the sandbox process's files). The warm-up (`--warmup`, default the first 10 %) is the
baseline; the verdict is the highest RSS after it against the 10 % target, and the data
dir's bytes per payment after it. The figures are computed in `memory_soak_report.py`.

Closed loop, not open: a soak is about what the server holds after N payments, not latency
under arrivals it cannot keep up with, so when it is slower than `--rate` the rate drops
(the table shows it) rather than requests piling up in the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

if __package__:  # python -m benchmarks.memory_soak, or imported by a test
    from .load.cli import DEFAULT_PSPS, _exit_on_sigterm, _psp_weights, _run_async
    from .load.clients import AiohttpClient
    from .load.flows import FlowRunner, Replayable
    from .load.server import ManagedServer, ProcessTree, SetupError, paymesh_executable
    from .load.stats import PhaseStats, summary_ms
    from .load.target import TargetSetup
    from .load.workload import CUSTOMER_SPACING_S, Arrival, Population, Workload
    from .memory_soak_report import Sample, Summary, summarise, table_rows, verdict_lines
else:  # python benchmarks/memory_soak.py: benchmarks/ is on sys.path
    from load.cli import DEFAULT_PSPS, _exit_on_sigterm, _psp_weights, _run_async
    from load.clients import AiohttpClient
    from load.flows import FlowRunner, Replayable
    from load.server import ManagedServer, ProcessTree, SetupError, paymesh_executable
    from load.stats import PhaseStats, summary_ms
    from load.target import TargetSetup
    from load.workload import CUSTOMER_SPACING_S, Arrival, Population, Workload
    from memory_soak_report import Sample, Summary, summarise, table_rows, verdict_lines

MIX = {"success": 100.0}
MIN_CUSTOMERS = 5_000
# The benchmark's own files in the data dir, not the server's data: the server's captured
# output, and (with --sandbox-process) the sandbox's own directory.
NOT_DATA = ("server.log", "sandbox")
BEHIND_RESET_S = 1.0  # further behind schedule than this, the pacer starts a new schedule


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="RSS and data dir growth of an embedded paymesh serve over many payments."
    )
    add = parser.add_argument
    add("--payments", type=int, default=1_000_000, help="successful payments (default 1e6)")
    add("--every", type=int, help="sample every N payments (default: payments / 50)")
    add("--warmup", type=int, help="payments before the baseline (default: 10 %% of them)")
    add("--rate", type=float, default=100.0, help="payments/s at most (default 100)")
    add("--concurrency", type=int, default=16, help="requests in flight at most (default 16)")
    add(
        "--customers",
        type=int,
        help=f"synthetic customers (default: {CUSTOMER_SPACING_S:g} s of --rate, at least "
        f"{MIN_CUSTOMERS:,}, so none pays often enough to look like velocity fraud)",
    )
    add("--psps", default=DEFAULT_PSPS, help=f"routing weights (default {DEFAULT_PSPS})")
    add("--psp-latency-ms", type=int, default=20, help="latency injected in each sandbox call")
    add(
        "--sandbox-process",
        action="store_true",
        help="run the PSP sandboxes as their own process: their memory is then not the server's",
    )
    add("--timeout", type=float, default=10.0, help="per-request timeout, s")
    add("--startup-timeout", type=float, default=60.0, help="server start, s")
    add("--keep-data", action="store_true", help="keep the server's data dir and log")
    add(
        "--project-to",
        type=int,
        default=1_000_000,
        help="payments to carry the RSS slope on to (default 1,000,000, issue 18's run)",
    )
    add("--seed", type=int, default=1, help="seed for customers and amounts")
    add("--json", type=Path, metavar="FILE", help="write the samples and figures as JSON")
    add("--plot", type=Path, metavar="FILE.png", help="plot RSS and data dir (matplotlib)")
    args = parser.parse_args(argv)
    if args.payments < 1 or args.rate <= 0 or args.concurrency < 1:
        parser.error("--payments, --rate and --concurrency must be positive")
    args.every = args.every or max(1, args.payments // 50)
    args.warmup = args.payments // 10 if args.warmup is None else args.warmup
    args.customers = args.customers or max(MIN_CUSTOMERS, math.ceil(args.rate * CUSTOMER_SPACING_S))
    if args.every < 1 or not 0 <= args.warmup < args.payments:
        parser.error("--every must be positive and --warmup under --payments")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib (the dev extras)")
    try:
        args.psp_weights = _psp_weights(args.psps)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def sample_marks(payments: int, every: int, warmup: int) -> list[int]:
    """Payment counts to sample at: every `every`, the end of the warm-up, and the last."""
    marks = set(range(every, payments + 1, every)) | {payments}
    if warmup:
        marks.add(warmup)
    return sorted(marks)


def data_files(data_dir: Path) -> dict[str, int]:
    """Bytes of each of the server's files in its data dir, by relative path."""
    sizes = {}
    for path in data_dir.rglob("*"):
        relative = path.relative_to(data_dir)
        if relative.parts[0] in NOT_DATA:
            continue
        try:
            if path.is_file():
                sizes[str(relative)] = path.stat().st_size
        except OSError:  # a SQLite journal gone between listing and stat
            continue
    return sizes


class Pacer:
    """Starts payments no faster than `rate` and no more than `slots` at a time, on one
    schedule across sampling intervals; a server slower than that sets the pace."""

    def __init__(self, rate: float, slots: int) -> None:
        self._interval = 1.0 / rate
        self._slots = asyncio.Semaphore(slots)
        self._t0 = time.perf_counter()
        self._started = 0

    async def run(
        self, arrivals: Sequence[Arrival], run_one: Callable[[Arrival, float], Awaitable[None]]
    ) -> None:
        tasks: set[asyncio.Task[None]] = set()
        for arrival in arrivals:
            await self._slots.acquire()
            now = time.perf_counter()
            due = self._t0 + self._started * self._interval
            if now - due > BEHIND_RESET_S:
                # Behind after a slow stretch: no burst to catch up, a new schedule from now.
                self._t0, self._started, due = now, 0, now
            if due > now:
                await asyncio.sleep(due - now)
            self._started += 1
            task = asyncio.get_running_loop().create_task(run_one(arrival, time.perf_counter()))
            tasks.add(task)
            task.add_done_callback(self._done(tasks))
        if tasks:
            await asyncio.wait(tasks)

    def _done(self, tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def release(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._slots.release()

        return release


class Soak:
    def __init__(self, args: argparse.Namespace, server: ManagedServer, console: Console) -> None:
        self._args = args
        self._server = server
        self._console = console
        # ManagedServer names no public data dir; it is the one it started the server in.
        self.data_dir: Path = server._data_dir
        tree = server.server_tree
        assert tree is not None, "the server is started first"
        self._tree: ProcessTree = tree
        self.samples: list[Sample] = []
        self.files: dict[str, dict[str, int]] = {}  # per-file sizes at start, warm-up, end
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency_ms: list[dict[str, Any]] = []
        self.population = 0

    async def run(self) -> None:
        args, server = self._args, self._server
        run = uuid.uuid4().hex[:8]
        setup = TargetSetup(server.base_url, server.api_key, server.sandbox_url)
        await setup.apply(args.psp_weights, args.psp_latency_ms, None, run)
        for note in setup.notes:
            self._console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        population = Population(args.customers, MIX, args.seed)
        self.population = population.size
        workload = Workload(MIX, population, server.api_key, run, args.seed)
        client = AiohttpClient(server.base_url, args.concurrency, args.timeout)
        pacer, rng = Pacer(args.rate, args.concurrency), random.Random(args.seed)
        replayable: deque[Replayable] = deque(maxlen=1)  # nothing replays in this mix
        started = time.perf_counter()
        self._sample(0, started, "start")
        done = 0
        try:
            for mark in sample_marks(args.payments, args.every, args.warmup):
                while done < mark:
                    stats = PhaseStats("soak", args.rate, (mark - done) / args.rate)
                    stats.t0, stats.t0_wall = time.perf_counter(), time.time()
                    runner = FlowRunner(client, stats, workload, None, replayable, 1.0, rng)
                    await pacer.run(workload.payments(mark - done), runner.run)
                    self._tally(stats)
                    if not stats.outcomes["succeeded"]:
                        raise SetupError(f"no payment succeeded: {dict(stats.errors)}")
                    done += stats.outcomes["succeeded"]
                label = "warm-up" if mark == args.warmup else "end" if mark == args.payments else ""
                self._sample(done, started, label)
        finally:
            await client.aclose()

    def _tally(self, stats: PhaseStats) -> None:
        self.outcomes.update(stats.outcomes)
        self.errors.update(stats.errors)
        self.latency_ms.append(summary_ms(stats.latencies["create"]))

    def _sample(self, payments: int, started: float, label: str) -> None:
        usage = self._tree.usage()
        if usage is None:
            raise SetupError(f"paymesh serve is gone:\n{self._server.log_tail()}")
        files = data_files(self.data_dir)
        sample = Sample(
            payments=payments,
            elapsed_s=round(time.perf_counter() - started, 3),
            rss_mib=round(usage[1], 2),
            data_bytes=sum(files.values()),
            cpu_s=round(usage[0], 2),
        )
        self.samples.append(sample)
        if label:
            self.files[label] = files
        latency = self.latency_ms[-1] if self.latency_ms else {}
        print(
            f"{payments:>10,} payments  {sample.elapsed_s:8.0f} s  RSS {sample.rss_mib:7.1f} MiB"
            f"  data {sample.data_bytes / 2**20:8.1f} MiB  create p50/p99 "
            f"{latency.get('p50', '-')}/{latency.get('p99', '-')} ms  errors "
            f"{sum(self.errors.values())}",
            file=sys.stderr,
            flush=True,
        )


def render(console: Console, soak: Soak, summary: Summary, args: argparse.Namespace) -> None:
    sandboxes = "own process" if args.sandbox_process else "built in"
    table = Table(
        title=f"Memory soak: {args.payments:,} payments at <= {args.rate:g}/s, <= "
        f"{args.concurrency} in flight, {soak.population:,} customers, PSPs {args.psps}, "
        f"sandboxes {sandboxes}; warm-up {args.warmup:,} payments; {os.cpu_count()} CPUs",
        title_justify="left",
    )
    headers = (
        "payments",
        "payments/s",
        "server CPU ms/payment",
        "RSS MiB",
        "RSS vs warm-up",
        "data dir MiB",
        "data bytes/payment",
    )
    for header in headers:
        table.add_column(header, justify="right")
    for row in table_rows(soak.samples, args.warmup):
        table.add_row(*row)
    console.print(table)
    end = soak.files.get("end", {})
    start = soak.files.get("start", {})
    base = soak.files.get("warm-up", start)
    for name in sorted(end, key=lambda n: -end[n]):
        console.print(
            f"  {name}: {end[name] / 2**20:.1f} MiB "
            f"(+{(end[name] - base.get(name, 0)) / 2**20:.1f} MiB after warm-up)",
            highlight=False,
        )
    blocked = {k: v for k, v in soak.outcomes.items() if k not in ("succeeded",)}
    console.print(
        f"succeeded {soak.outcomes['succeeded']:,}; other outcomes {blocked or 'none'}; "
        f"errors {dict(soak.errors) or 'none'}",
        highlight=False,
    )
    for line in verdict_lines(summary):
        console.print(line, highlight=False)


def write_json(path: Path, soak: Soak, summary: Summary, args: argparse.Namespace) -> None:
    settings = {k: v for k, v in vars(args).items() if k not in ("json", "plot")}
    document = {
        "settings": settings,
        "customers": soak.population,
        "samples": [vars_of(s) for s in soak.samples],
        "create_latency_ms_per_interval": soak.latency_ms,
        "data_files": soak.files,
        "outcomes": dict(soak.outcomes),
        "errors": dict(soak.errors),
        "summary": summary.to_dict(),
    }
    path.write_text(json.dumps(document, indent=2, default=str))


def vars_of(sample: Sample) -> dict[str, Any]:
    return {name: getattr(sample, name) for name in sample.__slots__}


def write_plot(path: Path, soak: Soak, summary: Summary, args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    payments = [s.payments for s in soak.samples]
    figure, (rss_axis, data_axis) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    rss_axis.plot(payments, [s.rss_mib for s in soak.samples], marker=".")
    base = summary.baseline.rss_mib
    rss_axis.axhline(base * 1.10, linestyle="--", color="red", label="warm-up RSS + 10 %")
    rss_axis.axvline(args.warmup, linestyle=":", color="grey", label="end of warm-up")
    rss_axis.set_ylabel("server RSS, MiB")
    rss_axis.legend()
    data_axis.plot(payments, [s.data_bytes / 2**20 for s in soak.samples], marker=".")
    data_axis.set_ylabel("data dir, MiB")
    data_axis.set_xlabel("payments")
    figure.suptitle(f"paymesh serve memory soak, {args.payments:,} payments")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    console = Console(width=None if sys.stdout.isatty() else 160)
    server = ManagedServer(
        paymesh_executable(),
        args.startup_timeout,
        stop_timeout=10.0,
        keep_data=args.keep_data,
        sandbox_process=args.sandbox_process,
    )
    soak: Soak | None = None
    stopped: int | None = None
    try:
        server.start()
        soak = Soak(args, server, console)
        _run_async(soak.run())
    except SetupError as exc:
        console.print(f"[red]soak failed:[/red] {exc}", highlight=False)
        return 2
    except (KeyboardInterrupt, SystemExit) as exc:
        # An hour into a soak, the samples so far are worth keeping: they are reported (and
        # written) as a run that ended at its last sample, and the exit code says it stopped.
        stopped = 130 if isinstance(exc, KeyboardInterrupt) else int(exc.code or 1)
        console.print("interrupted; server stopped")
        if soak is None or len(soak.samples) < 2:
            return stopped
    finally:
        server.stop()
    if stopped is not None:
        args.payments = soak.samples[-1].payments
        console.print(f"stopped early: reporting the {args.payments:,} payments sampled")
    summary = summarise(soak.samples, args.warmup, args.project_to)
    render(console, soak, summary, args)
    if args.json:
        write_json(args.json, soak, summary, args)
        console.print(f"JSON: {args.json}")
    if args.plot:
        write_plot(args.plot, soak, summary, args)
        console.print(f"plot: {args.plot}")
    if stopped is not None:
        return stopped
    return 0 if summary.within_target() else 1


if __name__ == "__main__":
    sys.exit(main())
