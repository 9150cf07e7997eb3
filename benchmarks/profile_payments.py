"""Where a payment's server CPU goes: a py-spy profile of `paymesh serve` under the open-loop
payments load, split by the part of paymesh each sample was in, and the ceilings that follow.

    python benchmarks/profile_payments.py --rate 180 --duration 25
    python benchmarks/profile_payments.py --rate 180 --duration 25 --json profile.json

It runs `payments_load.py --sandbox-process` (warm-up, a `/healthz` phase, then the payments
phase, each at `--rate`) as a subprocess, finds the `paymesh serve` that started, and once the
payments phase is under way records it with `py-spy record --gil --nonblocking` for
`--duration` - 4 s. With `--gil` a sample is taken only of the thread holding the GIL, so the
samples are the interpreter's serial time: what one process can do at most once per second.

Each sample goes to a category:

- the SQLite group-commit writer thread (a thread of its own, told apart by py-spy's thread
  ids);
- on the event loop's thread, the outermost paymesh service frame in the stack, that is who
  started the work: the event bus (built-in handlers and HTTP deliveries included), inbound
  PSP webhooks (with the payment drive a webhook schedules as its own task), the payment API
  service, or background jobs (recovery, the fraud checkpoint);
- otherwise the HTTP server (uvicorn, starlette and paymesh's HTTP layer: parsing, routing,
  auth, responses), the aiohttp client (its own tasks and protocol callbacks: sending PSP
  calls and deliveries and reading their answers, which the stack cannot tie to a caller),
  the bare event loop (no Python frame under the loop's entry: uvloop's C code, callback
  scheduling while holding the GIL), or other.

A stack py-spy read without its root (see `analyse`) is shared among the categories of the
whole stacks through the same outermost frame. A category's ms of server CPU per payment is
its share of the samples times the server's measured CPU per payment. CPU spent without the
GIL (SQLite's C code and fsyncs on the writer thread, uvloop's epoll and reads) is in the
measured figure but not in the samples, so a second column weights each thread's samples by
that thread's CPU from /proc over the same window.

Below the tables: the `/healthz` floor and the other processes' CPU per payment from the same
run, the machine's CPU over the window, and three ceilings on payments/s computed from them.
The server's database (kept by the load generator for this) gives the webhooks in and HTTP
deliveries out per payment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")
NOISY_SHARE = 0.15  # other work on the machine over this share of a core perturbs the run
BUSY_SHARE = 0.30  # the server above this share of a core over WINDOW s is under payments
WINDOW = 1.0
TICK = 0.25
SETTLE_MAX = 10.0  # the generator's --settle-timeout default: its longest idle wait
PROFILE_MARGIN = 4.0  # seconds of the payments phase left unprofiled (start, drain)

WRITER = "SQLite writer thread"
BUS = "event bus (built-ins, deliveries)"
WEBHOOKS = "inbound PSP webhooks"
PAYMENTS = "payment API service"
BACKGROUND = "background jobs"
HTTP = "HTTP server (uvicorn, starlette)"
AIOHTTP = "aiohttp client (own tasks)"
LOOP = "event loop (uvloop C code)"
OTHER = "other"
CATEGORIES = (WRITER, BUS, WEBHOOKS, PAYMENTS, BACKGROUND, HTTP, AIOHTTP, LOOP, OTHER)

# The outermost of these in a stack names who started the work: a bus delivery that drives a
# payment is the bus's, a payment that wakes the bus (notify) is the payment's. A fixed
# first-match order would get one of those two wrong.
SERVICE_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (BUS, re.compile(r"\(paymesh/service/bus\.py:")),
    # The drive a "processing" webhook schedules runs as its own task, rooted in bootstrap.
    (WEBHOOKS, re.compile(r"\(paymesh/service/webhooks\.py:|\bdrive \(paymesh/bootstrap\.py:")),
    # The payment use cases are a package (create, capture, ..., the authorisation driver).
    (PAYMENTS, re.compile(r"\(paymesh/service/(payments/\w+|idempotency)\.py:")),
    (
        BACKGROUND,
        re.compile(
            r"\(paymesh/service/(recovery|fraud_stream)\.py:"
            r"|\b_recover_then_watch \(paymesh/bootstrap\.py:"
        ),
    ),
)
PLUMBING_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (HTTP, re.compile(r"\((uvicorn|starlette|paymesh/entrypoints/http)/")),
    (AIOHTTP, re.compile(r"\(aiohttp/")),
)
WRITER_FRAME = re.compile(r"\(paymesh/adapters/sqlite/writer\.py:")
# Where the event loop's thread enters the loop: what runs below is a callback or a task.
LOOP_ENTRY = re.compile(
    r"\(asyncio/runners\.py:"
    r"|\b(run_forever|run_until_complete|_run_once) \(asyncio/base_events\.py:"
    r"|\bHandle\._run \(asyncio/events\.py:"
)
THREAD_FRAME = re.compile(r"^thread \((?P<tid>0x[0-9a-fA-F]+|\d+)\)(?::\s*(?P<name>.*))?$")
LINE_NUMBER = re.compile(r":\d+\)$")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="py-spy profile of paymesh serve during the payments load: server CPU "
        "per payment by category, and the ceilings on payments/s that follow."
    )
    add = parser.add_argument
    add("--rate", type=float, default=180.0, help="arrivals/s (default 180)")
    add("--duration", type=float, default=25.0, help="seconds of each measured phase")
    add("--warmup", type=float, default=3.0, help="uncounted seconds of payments first")
    add("--sample-rate", type=int, default=250, help="py-spy samples/s (default 250)")
    add(
        "--busy-share",
        type=float,
        default=BUSY_SHARE,
        help=f"server CPU share of a core that marks the payments phase (default {BUSY_SHARE:g})",
    )
    add(
        "--blocking",
        action="store_true",
        help="let py-spy pause the server for each "
        "sample: whole stacks, at a cost to the server (default: --nonblocking)",
    )
    add("--top", type=int, default=15, help="leaf functions to list (default 15)")
    add("--startup-timeout", type=float, default=60.0, help="max wait for paymesh serve, s")
    add("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    add("--stacks", type=Path, metavar="FILE", help="keep py-spy's collapsed stacks there")
    add(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="bar chart of server CPU per payment by category (matplotlib)",
    )
    add(
        "--before",
        type=Path,
        metavar="FILE.json",
        help="an earlier run's --json: plotted beside this one, as before and after",
    )
    args = parser.parse_args(argv)
    if args.duration <= PROFILE_MARGIN + 1:
        parser.error(f"--duration must be over {PROFILE_MARGIN + 1:g} s")
    if args.rate <= 0 or args.sample_rate <= 0:
        parser.error("--rate and --sample-rate must be positive")
    return args


# -- processes, from /proc -------------------------------------------------------------------


def _stat_fields(path: Path) -> list[str] | None:
    """The fields after the parenthesised command name (which may hold spaces): state, ppid..."""
    try:
        return path.read_text().rpartition(")")[2].split()
    except OSError:
        return None


def cpu_seconds(stat: Path) -> float | None:
    fields = _stat_fields(stat)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def cpu_split(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    return None if fields is None else (int(fields[11]) / TICKS, int(fields[12]) / TICKS)


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        cpu = cpu_seconds(stat)
        if cpu is not None:
            out[int(stat.parent.name)] = cpu
    return out


def machine_busy() -> float:
    """CPU seconds all cores spent not idle since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def find_paymesh(ancestor: int, command: str) -> tuple[int, list[str]] | None:
    """The `paymesh COMMAND` process under `ancestor` (its pid and argv), if it runs yet.
    Other paymesh processes (a test suite's, another benchmark's) are not under it."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat_fields(stat)
        if fields is not None:
            parents[int(stat.parent.name)] = int(fields[1])
    for pid in sorted(parents):
        up, seen = parents.get(pid), 0
        while up not in (None, 0, 1, ancestor) and seen < 64:
            up, seen = parents.get(up), seen + 1
        if up != ancestor:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        args = [a for a in argv.split("\0") if a]
        names = [Path(a).name for a in args]
        if "paymesh" in names and command in args[names.index("paymesh") + 1 :]:
            return pid, args
    return None


def _flag(argv: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return argv[argv.index(name) + 1]
    return None


def wait_for_payments(
    generator: subprocess.Popen[bytes], pid: int, args: argparse.Namespace, console: Console
) -> float | None:
    """Block until the payments phase has begun; its monotonic time, or None if the generator
    or the server ended first or it never came.

    The generator prints nothing until the end, so the server's CPU tells the phases apart:
    busy (start-up, warm-up), then quiet for a long stretch (the /healthz phase costs a few %
    of a core, and the generator waits for idle around it), then busy again: payments."""
    stat = Path(f"/proc/{pid}/stat")
    quiet_needed = max(2.0, 0.5 * args.duration)
    deadline = (
        time.monotonic() + args.startup_timeout + args.warmup + args.duration + 2 * SETTLE_MAX + 60
    )
    history: deque[tuple[float, float]] = deque()
    stage, quiet_since = "warm-up", 0.0
    while time.monotonic() < deadline:
        if generator.poll() is not None:
            return None
        cpu, now = cpu_seconds(stat), time.monotonic()
        if cpu is None:
            return None
        history.append((now, cpu))
        while len(history) > 1 and history[1][0] <= now - WINDOW:
            history.popleft()
        span = now - history[0][0]
        if span >= 0.9 * WINDOW:
            busy = (cpu - history[0][1]) / span >= args.busy_share
            if stage == "warm-up" and busy:
                stage = "healthz"
                quiet_since = now
            elif stage == "healthz":
                if busy:
                    quiet_since = now
                elif now - quiet_since >= quiet_needed:
                    stage = "armed"
                    console.print(
                        f"quiet for {quiet_needed:g} s (the /healthz phase); waiting "
                        "for the payments phase",
                        highlight=False,
                    )
            elif stage == "armed" and busy:
                return now
        time.sleep(TICK)
    return None


# -- stacks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    tid: int | None
    thread: str
    frames: tuple[str, ...]
    count: int


def parse_stacks(text: str) -> list[Stack]:
    """py-spy's raw (collapsed) format with --threads: `thread (TID): NAME;frame;... COUNT`,
    each frame `function (path/file.py:LINE)`, root first."""
    stacks = []
    for line in text.splitlines():
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            continue
        frames = body.split(";")
        tid, thread = None, "?"
        head = THREAD_FRAME.match(frames[0])
        if head:
            tid, thread = int(head["tid"], 0), head["name"] or "?"
            frames = frames[1:]
        frames = [f for f in frames if not f.startswith("process ")]
        stacks.append(Stack(tid, thread, tuple(frames), int(count)))
    return stacks


@dataclass
class Profile:
    samples: int = 0
    # Floats: a stack read without its root is shared among categories (see `analyse`).
    by_category: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    leaves: Counter[str] = field(default_factory=Counter)
    leaf_category: defaultdict[str, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    by_thread: Counter[int | None] = field(default_factory=Counter)
    thread_category: defaultdict[int | None, defaultdict[str, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    thread_names: dict[int | None, str] = field(default_factory=dict)
    thread_role: dict[int | None, str] = field(default_factory=dict)
    truncated: int = 0  # loop-thread samples whose stack lacks its root (read mid-change)
    unmatched: int = 0  # of which no whole stack shared the outermost frame


def analyse(stacks: Sequence[Stack]) -> Profile:
    """Categories, leaves and threads of the samples.

    With --nonblocking py-spy reads a stack while the loop runs on, and a coroutine that
    suspends meanwhile cuts its frame off from the caller's: many loop-thread stacks come
    without their root (seen: a fifth to a third), mostly 1-5 frames of a coroutine deep in a
    request or a delivery. Judged by those frames alone, they would fall to the payment API
    (a `_create` with no caller), aiohttp or other. Instead each is shared among categories
    as the whole stacks through its outermost frame are; only a stack whose outermost frame
    no whole stack has is judged by its own frames."""
    profile = Profile()
    loop_threads = {s.tid for s in stacks if any(LOOP_ENTRY.search(f) for f in s.frames)}
    writer_threads = {
        s.tid
        for s in stacks
        if s.tid not in loop_threads and any(WRITER_FRAME.search(f) for f in s.frames)
    }
    through: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for stack in stacks:
        if stack.tid in loop_threads:
            category, rooted = classify_loop(stack.frames)
            for frame in set(stack.frames) if rooted else ():
                through[frame][category] += stack.count
                through[LINE_NUMBER.sub(")", frame)][category] += stack.count
    for stack in stacks:
        shares: dict[str, float]
        if stack.tid in loop_threads:
            category, rooted = classify_loop(stack.frames)
            shares = {category: 1.0}
            role = "event loop"
            if not rooted:
                profile.truncated += stack.count
                outer = stack.frames[0] if stack.frames else ""
                seen = through.get(outer) or through.get(LINE_NUMBER.sub(")", outer))
                if seen:
                    total = sum(seen.values())
                    shares = {c: n / total for c, n in seen.items()}
                else:
                    profile.unmatched += stack.count
        elif stack.tid in writer_threads:
            shares, role = {WRITER: 1.0}, "SQLite writer"
        else:
            shares, role = {OTHER: 1.0}, "other thread"
        profile.samples += stack.count
        profile.by_thread[stack.tid] += stack.count
        profile.thread_names[stack.tid] = stack.thread
        profile.thread_role[stack.tid] = role
        leaf = LINE_NUMBER.sub(")", stack.frames[-1]) if stack.frames else "(no frame)"
        profile.leaves[leaf] += stack.count
        for category, share in shares.items():
            profile.by_category[category] += share * stack.count
            profile.thread_category[stack.tid][category] += share * stack.count
            profile.leaf_category[leaf][category] += share * stack.count
    return profile


def classify_loop(frames: Sequence[str]) -> tuple[str, bool]:
    """A loop-thread stack's category, and whether its root was there."""
    entry = max((i for i, f in enumerate(frames) if LOOP_ENTRY.search(f)), default=None)
    work = frames if entry is None else frames[entry + 1 :]
    if entry is not None and not work:
        return LOOP, True
    for markers in (SERVICE_MARKERS, PLUMBING_MARKERS):
        for frame in work:
            for category, pattern in markers:
                if pattern.search(frame):
                    return category, entry is not None
    return OTHER, entry is not None


# -- what the run measured -------------------------------------------------------------------


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _per(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def read_store(data_dir: Path) -> dict[str, Any]:
    """Counts from the server's SQLite file, warm-up and payments phases together (the same
    mix): payments, webhooks the server applied, events, deliveries by target type."""
    db = data_dir / "paymesh.db"
    if not db.exists():
        return {"error": f"{db} not found"}
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            payments = conn.execute("SELECT count(*) FROM payments").fetchone()[0]
            webhooks = conn.execute(
                "SELECT count(*) FROM processed WHERE consumer LIKE 'webhook:%'"
            ).fetchone()[0]
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            kinds: Counter[str] = Counter()
            attempts: Counter[str] = Counter()
            for doc, tries in conn.execute("SELECT doc, attempts FROM deliveries"):
                kind = str(json.loads(doc)["target"]["type"])
                kinds[kind] += 1
                attempts[kind] += int(tries)
        finally:
            conn.close()
    except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
        return {"error": f"reading {db}: {exc}"}
    return {
        "payments": payments,
        "webhooks_applied": webhooks,
        "events": events,
        "deliveries": dict(kinds),
        "delivery_attempts": dict(attempts),
    }


@dataclass
class Figures:
    """Per payment unless named otherwise; None where the run did not measure it."""

    server_ms: float | None
    healthz_ms: float | None  # server CPU per /healthz request: the HTTP floor
    sandbox_ms: float | None
    generator_ms_per_request: float | None
    generator_ms: float | None
    payments_per_s: float | None
    offered_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_pct: float | None
    exchanges: dict[str, float | None]
    assumptions: list[str]


def figures(run: dict[str, Any], store: dict[str, Any]) -> Figures:
    first = (run.get("runs") or [{}])[0]
    pay, hz = first.get("payments") or {}, first.get("healthz") or {}
    payments = pay.get("payments") or 0
    requests = pay.get("requests") or 0
    generator_cpu = _get(pay, "generator_cpu", "cpu_s")
    statuses = pay.get("statuses") or {}
    blocked = _get(pay, "outcomes", "blocked") or 0
    # Every create answered with a payment made one PSP call, a fraud block none; captures
    # and refunds one each.
    psp = payments - blocked + statuses.get("capture 200", 0) + statuses.get("refund 201", 0)
    assumptions = [
        "each HTTP exchange (API request in, PSP call out, webhook in, delivery out) costs the "
        "server what one /healthz request does",
        "PSP calls out: creates (less fraud blocks) + captures + refunds, a lower bound: PayPal "
        "reads the order before a capture or refund, and drives an approved order with more",
    ]
    exchanges: dict[str, float | None] = {
        "api_requests_in": _per(requests, payments),
        "psp_calls_out": _per(psp, payments),
        "webhooks_in": None,
        "deliveries_out": None,
    }
    if "error" in store:
        assumptions.append(f"webhooks and deliveries not counted: {store['error']}")
    else:
        # Over warm-up and payments phases together: the same mix, so the same ratios.
        exchanges["webhooks_in"] = _per(store["webhooks_applied"], store["payments"])
        exchanges["deliveries_out"] = _per(
            store["delivery_attempts"].get("http", 0), store["payments"]
        )
        assumptions.append(
            "webhooks in and HTTP deliveries out per payment: from the server's database "
            "(warm-up and payments phases), webhooks the server applied (a duplicate or one "
            "naming no known payment is not counted) and HTTP delivery attempts; built-in "
            "deliveries run in process and are not exchanges"
        )
    return Figures(
        server_ms=_get(pay, "server", "cpu_ms_per_payment"),
        healthz_ms=_get(hz, "server", "cpu_ms_per_payment"),
        sandbox_ms=_get(pay, "sandbox", "cpu_ms_per_payment"),
        generator_ms_per_request=_per(
            None if generator_cpu is None else 1000 * generator_cpu, requests
        ),
        generator_ms=_per(None if generator_cpu is None else 1000 * generator_cpu, payments),
        payments_per_s=pay.get("payments_per_s"),
        offered_per_s=pay.get("offered_payments_per_s"),
        p50_ms=_get(pay, "latency_ms", "p50"),
        p99_ms=_get(pay, "latency_ms", "p99"),
        server_cpu_pct=_get(pay, "server", "cpu_pct"),
        exchanges=exchanges,
        assumptions=assumptions,
    )


def ceilings(fig: Figures, cores: int, gil_ms: float | None) -> dict[str, float | None]:
    per_exchange = [v for v in fig.exchanges.values() if v is not None]
    exchanges = sum(per_exchange) if per_exchange else None
    floor_ms = None if exchanges is None or fig.healthz_ms is None else exchanges * fig.healthz_ms
    parts = (fig.server_ms, fig.sandbox_ms, fig.generator_ms)
    machine_ms = None if any(p is None for p in parts) else sum(p for p in parts if p)
    return {
        "server_per_core": _per(1000, fig.server_ms),
        "gil_ms_per_payment": gil_ms,
        "server_gil_bound": _per(1000, gil_ms),
        "machine_ms_per_payment": machine_ms,
        "machine": _per(1000 * cores, machine_ms),
        "machine_if_server_free": None
        if fig.sandbox_ms is None or fig.generator_ms is None
        else _per(1000 * cores, fig.sandbox_ms + fig.generator_ms),
        "exchanges_per_payment": exchanges,
        "http_floor_ms_per_payment": floor_ms,
        "http_floor_per_core": _per(1000, floor_ms),
        "paymesh_logic_ms_per_payment": None
        if floor_ms is None or fig.server_ms is None
        else fig.server_ms - floor_ms,
    }


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Window:
    """What happened to the server while py-spy recorded it."""

    seconds: float = 0.0
    cpu_user: float = 0.0
    cpu_system: float = 0.0
    threads: dict[int, float] = field(default_factory=dict)  # tid -> CPU seconds
    # The rest of the machine over the window, CPU seconds: sandbox, generator, py-spy, and
    # all cores together (whatever else runs on a shared machine is the difference).
    others: dict[str, float] = field(default_factory=dict)
    machine: float = 0.0
    pyspy_samples: int | None = None
    pyspy_errors: int | None = None
    pyspy_lag_s: float = 0.0  # how far py-spy fell behind its rate, at worst


def record(pid: int, neighbours: dict[str, int], args: argparse.Namespace, work: Path) -> Window:
    """py-spy on the server for --duration - 4 s. `neighbours`: the other processes whose
    CPU over the same window is worth knowing (name -> pid)."""
    seconds = max(1, round(args.duration - PROFILE_MARGIN))
    out, log = work / "serve.txt", work / "py-spy.log"
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    command = [pyspy, "record", "-p", str(pid), "--gil", "--threads", "--format", "raw"]
    command += ["-r", str(args.sample_rate), "-d", str(seconds), "-o", str(out)]
    if not args.blocking:
        command.append("--nonblocking")
    window = Window()
    threads_before, split_before = thread_cpu(pid), cpu_split(pid)
    others_before = {name: _cpu(p) for name, p in neighbours.items()}
    machine_before = machine_busy()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            process.wait(seconds + 30)
        finally:
            if process.poll() is None:
                # SIGINT makes py-spy write what it has before it exits.
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    window.seconds = time.monotonic() - started
    threads_after, split_after = thread_cpu(pid), cpu_split(pid)
    window.machine = machine_busy() - machine_before
    for name, before in others_before.items():
        after = _cpu(neighbours[name])
        if before is not None and after is not None:
            window.others[name] = after - before
    # The generator is not reaped until the end: the only child reaped meanwhile is py-spy.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    window.others["py-spy"] = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    if split_before and split_after:
        window.cpu_user = split_after[0] - split_before[0]
        window.cpu_system = split_after[1] - split_before[1]
    window.threads = {tid: cpu - threads_before.get(tid, 0.0) for tid, cpu in threads_after.items()}
    text = log.read_text(errors="replace")
    found = re.search(r"Samples: (\d+) Errors: (\d+)", text)
    if found:
        window.pyspy_samples, window.pyspy_errors = int(found[1]), int(found[2])
    lags = re.findall(r"([\d.]+)s behind in sampling", text)
    window.pyspy_lag_s = max((float(lag) for lag in lags), default=0.0)
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({process.returncode}):\n{text[-2000:]}")
    return window


def _cpu(pid: int) -> float | None:
    return cpu_seconds(Path(f"/proc/{pid}/stat"))


def run_generator(args: argparse.Namespace, work: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(HERE / "payments_load.py"), "--sandbox-process"]
    command += ["--rate", f"{args.rate:g}", "--duration", f"{args.duration:g}"]
    command += ["--warmup", f"{args.warmup:g}", "--no-progress", "--json", str(work / "run.json")]
    # Keeps the server's database for read_store; this script removes it.
    command += ["--keep-data"]
    log = (work / "generator.log").open("wb")
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=HERE.parent)
    finally:
        log.close()


def stop_generator(generator: subprocess.Popen[bytes]) -> None:
    if generator.poll() is None:
        # Its SIGTERM handler stops the server and sandbox it started.
        generator.terminate()
        try:
            generator.wait(30)
        except subprocess.TimeoutExpired:
            generator.kill()
            generator.wait()


def remove_data_dir(path: Path | None) -> None:
    # Only ever a temp dir of the generator's own making, whatever the server's argv said.
    if (
        path is not None
        and path.parent == Path(tempfile.gettempdir())
        and path.name.startswith("paymesh-bench-")
    ):
        shutil.rmtree(path, ignore_errors=True)


def _exit_on_sigterm() -> None:
    # Default SIGTERM handling would end us without running `finally`: the generator would
    # run on unprofiled and its server's data dir, kept for us, would stay behind.
    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    _exit_on_sigterm()
    console = Console(width=None if sys.stdout.isatty() else 120)
    work = Path(tempfile.mkdtemp(prefix="paymesh-profile-"))
    generator: subprocess.Popen[bytes] | None = None
    data_dir: list[Path] = []
    try:
        console.print(
            f"payments_load.py --sandbox-process --rate {args.rate:g} --duration "
            f"{args.duration:g} --warmup {args.warmup:g}; py-spy --gil at {args.sample_rate}/s "
            f"for {round(args.duration - PROFILE_MARGIN)} s of the payments phase",
            highlight=False,
        )
        generator = run_generator(args, work)
        return profile_run(console, args, work, generator, data_dir)
    except RuntimeError as exc:  # py-spy failed
        console.print(str(exc), style="red", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        # Ctrl-C reached the generator too (one process group): a SIGTERM now would cut
        # short its stopping of the server and sandbox.
        if generator is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                generator.wait(30)
        return 130
    finally:
        if generator is not None:
            stop_generator(generator)
        for path in data_dir:
            remove_data_dir(path)
        shutil.rmtree(work, ignore_errors=True)


def profile_run(
    console: Console,
    args: argparse.Namespace,
    work: Path,
    generator: subprocess.Popen[bytes],
    data_dir: list[Path],
) -> int:
    """Everything between starting the generator and stopping it; `data_dir` receives the
    server's data dir as soon as it is known, for the caller to remove whatever happens."""
    deadline = time.monotonic() + args.startup_timeout
    found = None
    while found is None and generator.poll() is None and time.monotonic() < deadline:
        found = find_paymesh(generator.pid, "serve")
        time.sleep(0.2)
    if found is None:
        console.print("[red]no paymesh serve under the load generator[/red]")
        console.print(_tail(work / "generator.log"), highlight=False, markup=False)
        return 2
    pid, serve_argv = found
    data_dir.append(Path(_flag(serve_argv, "--data-dir") or ""))
    neighbours = {"generator": generator.pid}
    sandbox = find_paymesh(generator.pid, "sandbox")
    if sandbox is not None:
        neighbours["sandbox"] = sandbox[0]
    console.print(f"paymesh serve: pid {pid}", highlight=False)
    if wait_for_payments(generator, pid, args, console) is None:
        console.print("[red]the payments phase was not seen to start[/red]")
        console.print(_tail(work / "generator.log"), highlight=False, markup=False)
        return 1
    console.print("payments phase under way: recording", highlight=False)
    window = record(pid, neighbours, args, work)
    try:
        generator.wait(args.duration * 2 + 300)
    except subprocess.TimeoutExpired:
        console.print("[red]the load generator did not finish[/red]")
        return 1
    run_path = work / "run.json"
    if generator.returncode != 0 or not run_path.exists():
        console.print(f"[red]the load generator exited {generator.returncode}[/red]")
        console.print(_tail(work / "generator.log"), highlight=False, markup=False)
        return 1
    run = json.loads(run_path.read_text())
    store = read_store(data_dir[0])
    stacks_text = (work / "serve.txt").read_text()
    if args.stacks:
        args.stacks.parent.mkdir(parents=True, exist_ok=True)
        args.stacks.write_text(stacks_text)
    result = report(console, args, run, store, parse_stacks(stacks_text), window)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"JSON: {args.json}")
    if args.plot:
        before = json.loads(args.before.read_text()) if args.before else None
        plot_categories(args.plot, result, before)
        console.print(f"plot: {args.plot}")
    return 0


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- the report ------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _pct(seconds: float | None, window: float) -> float | None:
    return _per(None if seconds is None else 100 * seconds, window)


@dataclass
class Context:
    """What every table of the report draws on."""

    args: argparse.Namespace
    profile: Profile
    fig: Figures
    window: Window

    @property
    def total(self) -> int:
        return self.profile.samples or 1

    def ms(self, count: float) -> float | None:
        """Server CPU per payment that `count` samples stand for."""
        server = self.fig.server_ms
        return None if server is None else count / self.total * server

    def by_thread_cpu(self) -> dict[str, float] | None:
        """Server CPU per payment by category, each thread's samples weighted by that
        thread's CPU from /proc: the writer's SQLite C code and fsyncs run without the GIL,
        so its share of the samples undercounts its share of the CPU."""
        window, server = self.window, self.fig.server_ms
        process = window.cpu_user + window.cpu_system
        if server is None or not process or not window.threads:
            return None
        out: defaultdict[str, float] = defaultdict(float)
        for tid, cpu in window.threads.items():
            ms = cpu / process * server
            counts = self.profile.thread_category.get(tid)
            samples = sum(counts.values()) if counts else 0.0
            if not counts or not samples:
                out[OTHER] += ms  # a thread that never held the GIL while sampled
                continue
            for category, count in counts.items():
                out[category] += count / samples * ms
        return dict(out)

    @property
    def gil_held(self) -> float | None:
        """The share of the window some thread held the GIL."""
        seconds = self.args.sample_rate * self.window.seconds
        return self.profile.samples / seconds if seconds else None


def report(
    console: Console,
    args: argparse.Namespace,
    run: dict[str, Any],
    store: dict[str, Any],
    stacks: Sequence[Stack],
    window: Window,
) -> dict[str, Any]:
    ctx = Context(args, analyse(stacks), figures(run, store), window)
    held = ctx.gil_held
    gil_ms = _per(None if held is None else 1000 * held, ctx.fig.payments_per_s)
    limits = ceilings(ctx.fig, os.cpu_count() or 1, gil_ms)
    categories = category_table(console, ctx)
    top = leaf_table(console, ctx)
    threads = thread_table(console, ctx)
    measured_table(console, ctx)
    ceiling_table(console, ctx, limits, gil_ms)
    for note in ctx.fig.assumptions:
        console.print(f"assumption: {note}", highlight=False)
    return {
        "settings": {
            "rate": args.rate,
            "duration": args.duration,
            "warmup": args.warmup,
            "sample_rate": args.sample_rate,
            "busy_share": args.busy_share,
        },
        "categories": categories,
        "top_leaves": top,
        "threads": threads,
        "window": {
            "seconds": round(window.seconds, 3),
            "server_cpu_user_s": round(window.cpu_user, 3),
            "server_cpu_system_s": round(window.cpu_system, 3),
            "others_cpu_s": {k: round(v, 3) for k, v in window.others.items()},
            "machine_busy_s": round(window.machine, 3),
            "gil_held_share": held,
            "truncated_share": ctx.profile.truncated / ctx.total,
            "unmatched_share": ctx.profile.unmatched / ctx.total,
            "pyspy_samples": window.pyspy_samples,
            "pyspy_errors": window.pyspy_errors,
            "pyspy_lag_s": window.pyspy_lag_s,
        },
        "figures": {k: v for k, v in vars(ctx.fig).items() if k != "assumptions"},
        "store": store,
        "ceilings": limits,
        "assumptions": ctx.fig.assumptions,
        "load": run,
    }


def category_table(console: Console, ctx: Context) -> dict[str, dict[str, float | None]]:
    fig, window = ctx.fig, ctx.window
    table = Table(
        title=f"Where a payment's server CPU goes: {ctx.profile.samples} GIL samples at "
        f"{ctx.args.sample_rate}/s over {window.seconds:.1f} s of the payments phase; "
        f"ms/payment = share x {_f(fig.server_ms)} ms server CPU per payment; by thread CPU: "
        "each thread's samples weighted by its CPU from /proc",
        title_justify="left",
    )
    table.add_column("category")
    for name in ("samples", "share", "ms/payment", "by thread CPU"):
        table.add_column(name, justify="right")
    weighted = ctx.by_thread_cpu()
    out: dict[str, dict[str, float | None]] = {}
    for category in CATEGORIES:
        count = ctx.profile.by_category.get(category, 0)
        by_cpu = None if weighted is None else weighted.get(category, 0.0)
        out[category] = {
            "samples": count,
            "share": count / ctx.total,
            "ms": ctx.ms(count),
            "ms_by_thread_cpu": by_cpu,
        }
        table.add_row(
            category,
            f"{count:.0f}",
            f"{100 * count / ctx.total:.1f}%",
            _f(ctx.ms(count)),
            _f(by_cpu),
        )
    table.add_section()
    table.add_row(
        "total",
        str(ctx.profile.samples),
        "100%",
        _f(fig.server_ms),
        _f(None if weighted is None else sum(weighted.values())),
    )
    console.print(table)
    return out


def leaf_table(console: Console, ctx: Context) -> list[dict[str, Any]]:
    table = Table(title=f"Top {ctx.args.top} leaf functions (self time)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("function (file)")
    table.add_column("share", justify="right")
    table.add_column("ms/payment", justify="right")
    table.add_column("category")
    out = []
    for rank, (leaf, count) in enumerate(ctx.profile.leaves.most_common(ctx.args.top), 1):
        shares = ctx.profile.leaf_category[leaf]
        category = max(shares, key=shares.__getitem__)
        out.append(
            {
                "function": leaf,
                "samples": count,
                "share": count / ctx.total,
                "ms": ctx.ms(count),
                "category": category,
            }
        )
        table.add_row(
            str(rank), leaf, f"{100 * count / ctx.total:.1f}%", _f(ctx.ms(count)), category
        )
    console.print(table)
    return out


def thread_table(console: Console, ctx: Context) -> list[dict[str, Any]]:
    window, profile = ctx.window, ctx.profile
    table = Table(
        title="Threads: GIL samples against CPU from /proc over the same window; ms = CPU "
        "share x server CPU per payment",
        title_justify="left",
    )
    for name in ("thread", "role", "GIL share", "CPU % of a core", "CPU share", "ms/payment"):
        table.add_column(name, justify="left" if name in ("thread", "role") else "right")
    process_cpu = window.cpu_user + window.cpu_system
    tids = set(profile.by_thread) | set(window.threads)
    out = []
    for tid in sorted(tids, key=lambda t: -window.threads.get(t, 0.0) if t else 0.0):
        cpu = window.threads.get(tid, 0.0) if tid is not None else 0.0
        gil = profile.by_thread.get(tid, 0)
        if not gil and cpu < 0.005 * process_cpu:
            continue  # an idle helper thread
        share = _per(cpu, process_cpu)
        thread_ms = (
            None if share is None or ctx.fig.server_ms is None else share * ctx.fig.server_ms
        )
        name = profile.thread_names.get(tid, "(no GIL samples)")
        role = profile.thread_role.get(tid, "-")
        pct = _pct(cpu, window.seconds)
        out.append(
            {
                "tid": tid,
                "name": name,
                "role": role,
                "gil_share": gil / ctx.total,
                "cpu_pct": pct,
                "cpu_share": share,
                "ms": thread_ms,
            }
        )
        table.add_row(
            f"{name} ({tid})",
            role,
            f"{100 * gil / ctx.total:.1f}%",
            _f(pct, 1),
            _f(None if share is None else 100 * share, 1, "%"),
            _f(thread_ms),
        )
    console.print(table)
    return out


def measured_table(console: Console, ctx: Context) -> None:
    fig, window = ctx.fig, ctx.window
    seconds = window.seconds
    server = window.cpu_user + window.cpu_system
    others = window.others
    rest = window.machine - server - sum(others.values())
    machine = " + ".join(
        f"{name} {_f(_pct(cpu, seconds), 0)}"
        for name, cpu in (("server", server), *sorted(others.items()), ("rest", rest))
    )
    e = fig.exchanges
    held = ctx.gil_held
    rows = [
        (
            "achieved payments/s (offered)",
            f"{_f(fig.payments_per_s, 1)} ({_f(fig.offered_per_s, 1)})",
        ),
        ("API latency p50 / p99, ms", f"{_f(fig.p50_ms, 1)} / {_f(fig.p99_ms, 1)}"),
        ("server CPU per payment, ms", _f(fig.server_ms)),
        ("healthz floor: server CPU per HTTP request, ms", _f(fig.healthz_ms, 3)),
        ("sandbox CPU per payment, ms", _f(fig.sandbox_ms)),
        (
            "generator CPU per request (per payment), ms",
            f"{_f(fig.generator_ms_per_request)} ({_f(fig.generator_ms)})",
        ),
        (
            "HTTP exchanges per payment: API in / PSP out / webhooks in / deliveries out",
            " / ".join(
                _f(e[k])
                for k in ("api_requests_in", "psp_calls_out", "webhooks_in", "deliveries_out")
            ),
        ),
        (
            "profile window: server CPU, % of a core (user / system)",
            f"{_f(_pct(server, seconds), 1)} ({_f(_pct(window.cpu_user, seconds), 1)} / "
            f"{_f(_pct(window.cpu_system, seconds), 1)})",
        ),
        ("profile window: GIL held, % of the time", _f(None if held is None else 100 * held, 1)),
        (
            f"profile window: all {os.cpu_count()} cores busy, % of one core",
            f"{_f(_pct(window.machine, seconds), 0)} = {machine}",
        ),
        (
            "samples read without their root (shared as whole stacks; no whole stack to go by)",
            f"{100 * ctx.profile.truncated / ctx.total:.1f}% "
            f"({100 * ctx.profile.unmatched / ctx.total:.1f}%)",
        ),
        (
            "py-spy samples / errors (stacks it could not read) / fell behind, s",
            f"{window.pyspy_samples} / {window.pyspy_errors} / {window.pyspy_lag_s:.2f}",
        ),
    ]
    table = Table(title="Measured in the same run", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)
    if seconds and rest / seconds > NOISY_SHARE:
        console.print(
            f"[yellow]warning:[/yellow] other work used {100 * rest / seconds:.0f}% of a core "
            "during the window: the server shared its cores; repeat on a quiet machine",
            highlight=False,
        )


def ceiling_table(
    console: Console, ctx: Context, limits: dict[str, float | None], gil_ms: float | None
) -> None:
    fig = ctx.fig
    cores = os.cpu_count() or 1
    table = Table(
        title="Ceilings on payments/s, from the figures above",
        title_justify="left",
        show_header=False,
    )
    table.add_column("ceiling")
    table.add_column("payments/s", justify="right")
    table.add_column("from")
    table.add_row(
        "(a) one server process on a core of its own",
        _f(limits["server_per_core"], 0),
        f"1000 / {_f(fig.server_ms)} ms server CPU per payment",
    )
    table.add_row(
        "(a') one interpreter's GIL",
        _f(limits["server_gil_bound"], 0),
        f"1000 / {_f(gil_ms)} ms of GIL held per payment in the window",
    )
    table.add_row(
        f"(b) this machine ({cores} cores): server + sandbox + generator",
        _f(limits["machine"], 0),
        f"{1000 * cores} / ({_f(fig.server_ms)} + {_f(fig.sandbox_ms)} + "
        f"{_f(fig.generator_ms)}) ms per payment",
    )
    # The PSPs and the customers are not paymesh's, yet on this machine they share its cores:
    # this is what the benchmark itself allows.
    table.add_row(
        "(b') this machine if the server cost nothing",
        _f(limits["machine_if_server_free"], 0),
        f"{1000 * cores} / ({_f(fig.sandbox_ms)} + {_f(fig.generator_ms)}) ms per payment",
    )
    table.add_row(
        "(c) one process if paymesh's own logic cost nothing",
        _f(limits["http_floor_per_core"], 0),
        f"1000 / ({_f(limits['exchanges_per_payment'])} HTTP exchanges x "
        f"{_f(fig.healthz_ms, 3)} ms) = 1000 / {_f(limits['http_floor_ms_per_payment'])} ms; "
        f"the rest, {_f(limits['paymesh_logic_ms_per_payment'])} ms, is paymesh's own",
    )
    console.print(table)


# -- the plot --------------------------------------------------------------------------------


def category_ms(doc: dict[str, Any]) -> dict[str, float]:
    """A run's (its --json's) server CPU ms per payment by category: by thread CPU where the
    run had it (the writer's C code counted), else by GIL samples."""
    out = {}
    for category in CATEGORIES:
        row = doc["categories"].get(category) or {}
        value = row.get("ms_by_thread_cpu")
        if value is None:
            value = row.get("ms")
        out[category] = float(value or 0.0)
    return out


def plot_categories(
    path: Path, after: dict[str, Any], before: dict[str, Any] | None = None
) -> Path:
    """Horizontal bars, one per category, this run's beside `before`'s when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [("this run", after)] if before is None else [("before", before), ("after", after)]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    height = 0.8 / len(runs)
    names = list(reversed(CATEGORIES))
    for i, (label, doc) in enumerate(runs):
        ms = category_ms(doc)
        total = sum(ms.values())
        rate = doc.get("figures", {}).get("payments_per_s")
        rate_text = "" if rate is None else f", {rate:.0f} payments/s"
        ax.barh(
            [y + i * height for y in range(len(names))],
            [ms[name] for name in names],
            height=height,
            label=f"{label}: {total:.2f} ms{rate_text}",
        )
    ax.set_yticks([y + height * (len(runs) - 1) / 2 for y in range(len(names))], names)
    ax.set_xlabel("server CPU ms per payment (each thread's samples weighted by its CPU)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(
        "Where a payment's server CPU goes (make profile); issue 18's target is 1.0 ms for all "
        "of it",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    sys.exit(main())
