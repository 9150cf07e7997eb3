"""What a payment writes to SQLite, page by page: the WAL frames of each table and index.

    python -m benchmarks.wal_pages --payments 2000 --concurrency 1,32
    python -m benchmarks.wal_pages --baseline-src /tmp/before/src     # and an older tree's

In WAL mode every commit appends each page it changed to the WAL, whole (4 KiB and a 24-byte
frame header), and a checkpoint later copies the newest copy of each into the database file.
So what a payment costs the writer thread and the disk grows with how many pages its commits
touch, however few bytes of them change. This counts them.

It starts an embedded `paymesh serve` (SQLite, sandboxes inside) whose connections do not
checkpoint (`wal_autocheckpoint=0`, set by a small launcher around the CLI; nothing in
paymesh changes), keeps a hard link to its WAL, and posts `--payments` payments from
`--concurrency` clients at once, each with its own idempotency key over 5,000 customers. It
waits until every event is routed and every delivery done, reads which B-tree owns each page
(SQLite's `dbstat`), stops the server, and reads the frames the payments wrote from the link:
frames and commits a payment, and frames a payment by table or index. One client makes a
commit per changeset; many let the group-commit writer share pages between payments. Beside
them, the write calls and bytes of the server's busiest writing thread but its first (the
SQLite writer's; the event loop's writes sockets) from `/proc`: the WAL, and the temporary
file SQLite copies pages to for a savepoint, when it uses one.

With `--baseline-src`, each concurrency runs first with that tree's `paymesh` (a worktree
of an older commit) and then with this one, and the ratios a payment are printed: counts,
not times, so this machine's noise does not move them much.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import struct
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.load.server import ManagedServer

_WAL_HEADER = 32
_FRAME_HEADER = 24

# A `paymesh` for ManagedServer: the CLI as installed, except that `serve`'s connections
# never checkpoint and the WAL they write is hard-linked to $PAYMESH_WAL_LINK, so every frame
# stays readable after the server has closed (and unlinked) it.
_LAUNCHER = """\
#!{python}
import os, sys, threading, time
if {baseline!r}:
    sys.path.insert(0, {baseline!r})
if sys.argv[1:2] == ["serve"]:
    from paymesh.adapters.sqlite import schema, store

    _connect = schema.connect
    _linked = []

    def connect(path):
        conn = _connect(path)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        if not _linked:
            _linked.append(path)

            def link():
                while not os.path.exists(path + "-wal"):
                    time.sleep(0.01)
                os.link(path + "-wal", os.environ["PAYMESH_WAL_LINK"])

            threading.Thread(target=link, daemon=True).start()
        return conn

    schema.connect = store.connect = connect
from paymesh.entrypoints.cli import main

sys.exit(main())
"""


@dataclass
class Frames:
    """Frames of a stretch of WAL, each by the B-tree that owns its page."""

    frames: int = 0
    commits: int = 0
    by_tree: Counter[str] = field(default_factory=Counter)
    bytes_each: int = 4096 + _FRAME_HEADER  # a frame: its header and one page


def wal_frame_count(path: Path) -> int:
    """How many whole frames the WAL holds now (it only grows: nothing checkpoints)."""
    size = path.stat().st_size
    if size < _WAL_HEADER:  # not written yet
        return 0
    page_size = _page_size(path)
    return max(0, (size - _WAL_HEADER) // (page_size + _FRAME_HEADER))


def _page_size(path: Path) -> int:
    with path.open("rb") as wal:
        header = wal.read(_WAL_HEADER)
    return int(struct.unpack(">I", header[8:12])[0])


def read_frames(path: Path, start: int, end: int, owner: dict[int, str]) -> Frames:
    """Frames `start` (inclusive) to `end` of the WAL at `path`, by the B-tree owning each
    page (`?` for one that is free by the time `owner` was read)."""
    page_size = _page_size(path)
    out = Frames(bytes_each=page_size + _FRAME_HEADER)
    with path.open("rb") as wal:
        salts = wal.read(_WAL_HEADER)[16:24]
        wal.seek(_WAL_HEADER + start * (page_size + _FRAME_HEADER))
        for _ in range(start, end):
            header = wal.read(_FRAME_HEADER)
            if len(header) < _FRAME_HEADER or header[8:16] != salts:
                break  # the end of what this WAL holds (a frame not yet whole)
            page, commit_size = struct.unpack(">II", header[:8])
            wal.seek(page_size, os.SEEK_CUR)
            out.frames += 1
            out.commits += commit_size != 0  # a commit's last frame carries the db's size
            out.by_tree[owner.get(page, "?")] += 1
    return out


def _read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def settled(db: Path) -> bool:
    """Every event routed and no delivery left to make."""
    conn = _read_only(db)
    try:
        events = conn.execute("SELECT count(*) FROM events WHERE delivered = 0").fetchone()[0]
        due = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()
        return bool(events == 0 and due[0] == 0)
    finally:
        conn.close()


async def post_payments(base_url: str, api_key: str, payments: int, concurrency: int) -> int:
    """`payments` payments from `concurrency` clients at once; how many were created."""
    headers = {"Authorization": f"Bearer {api_key}"}
    created = 0
    left = iter(range(payments))

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal created
        for n in left:
            body = {
                "amount": 1000 + n % 9000,
                "currency": "usd",
                "customer_id": f"cus_{n * 7919 % 5000}",
                "payment_method": "pm_card_visa",
            }
            async with session.post(
                f"{base_url}/v1/payments",
                json=body,
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            ) as answer:
                await answer.read()
                created += answer.status == 201

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return created


def thread_writes(pid: int) -> dict[int, tuple[int, int]]:
    """Write calls and bytes written by each of a process's threads but its first."""
    out: dict[int, tuple[int, int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) == pid:
            continue
        io = dict(line.split(": ") for line in (task / "io").read_text().splitlines())
        out[int(task.name)] = (int(io["syscw"]), int(io["wchar"]))
    return out


def writer_writes(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> tuple[int, int]:
    """The writes of the thread that wrote most between two `thread_writes`: the SQLite
    writer's (the event loop's thread, which writes the sockets, is left out)."""
    deltas = [
        (calls - before.get(tid, (0, 0))[0], written - before.get(tid, (0, 0))[1])
        for tid, (calls, written) in after.items()
    ]
    return max(deltas, default=(0, 0))


@dataclass
class Run:
    tree: str
    concurrency: int
    payments: int
    frames: Frames
    #: The writer thread's write calls and bytes over the payments: the WAL, and any
    #: temporary file SQLite spills a savepoint's page copies to (nothing checkpoints).
    write_calls: int = 0
    written: int = 0

    def per_payment(self, count: int) -> float:
        return count / self.payments if self.payments else float("nan")


def measure(
    tree: str, baseline_src: str | None, payments: int, concurrency: int, sandbox_process: bool
) -> Run:
    with tempfile.TemporaryDirectory(prefix="paymesh-wal-") as scratch:
        launcher = Path(scratch) / "paymesh"
        launcher.write_text(_LAUNCHER.format(python=sys.executable, baseline=baseline_src or ""))
        launcher.chmod(0o755)
        link = Path(scratch) / "wal"
        os.environ["PAYMESH_WAL_LINK"] = str(link)
        server = ManagedServer(
            str(launcher), 60, 30, keep_data=False, sandbox_process=sandbox_process
        )
        db = server.data_dir / "paymesh.db"
        try:
            server.start()
            deadline = time.monotonic() + 10
            while not link.exists():  # the launcher links it once the server has opened it
                if time.monotonic() > deadline:
                    raise SystemExit(f"no WAL linked at {link}: see {server.log_tail()}")
                time.sleep(0.05)
            start = wal_frame_count(link)
            pid = server.server_tree.roots[0] if server.server_tree else 0
            threads_before = thread_writes(pid)
            created = asyncio.run(
                post_payments(server.base_url, server.api_key, payments, concurrency)
            )
            deadline = time.monotonic() + 60
            while not settled(db):
                if time.monotonic() > deadline:
                    raise SystemExit("the payments' events and deliveries did not settle in 60 s")
                time.sleep(0.2)
            time.sleep(0.5)  # the last marks' commit
            end = wal_frame_count(link)
            write_calls, written = writer_writes(threads_before, thread_writes(pid))
            conn = _read_only(db)
            try:
                owner = {
                    page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")
                }
            finally:
                conn.close()
        finally:
            server.stop()
        frames = read_frames(link, start, end, owner)
        return Run(tree, concurrency, created, frames, write_calls, written)


def report(runs: list[Run], top: int) -> None:
    for run in runs:
        f = run.frames
        print(
            f"\n{run.tree}, {run.concurrency} client(s): {run.payments} payments,"
            f" {run.per_payment(f.commits):.2f} commits and {run.per_payment(f.frames):.1f} frames"
            f" ({run.per_payment(f.frames * f.bytes_each) / 1024:.0f} KiB) a payment,"
            f" {f.frames / max(f.commits, 1):.1f} frames a commit; the writer thread:"
            f" {run.per_payment(run.write_calls):.1f} write calls and"
            f" {run.per_payment(run.written) / 1024:.0f} KiB a payment"
        )
        for name, count in f.by_tree.most_common(top):
            print(f"  {run.per_payment(count):6.2f}  {name}")
    baselines = {r.concurrency: r for r in runs if r.tree == "baseline"}
    for run in runs:
        before = baselines.get(run.concurrency)
        if run.tree != "this tree" or before is None:
            continue
        print(f"\n{run.concurrency} client(s), a payment, this tree / baseline:")
        for what, after, was in (
            ("WAL frames", run.frames.frames, before.frames.frames),
            ("writer's write calls", run.write_calls, before.write_calls),
            ("writer's KiB written", run.written / 1024, before.written / 1024),
        ):
            now, then = run.per_payment(after), before.per_payment(was)
            print(f"  {what}: {now:.1f} / {then:.1f} = {now / then:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,32", help="clients at once, comma-separated")
    parser.add_argument("--baseline-src", help="an older tree's src/ to measure first")
    parser.add_argument(
        "--sandbox-process", action="store_true", help="the PSP sandboxes in their own process"
    )
    parser.add_argument("--top", type=int, default=12, help="B-trees listed a run")
    args = parser.parse_args()
    runs: list[Run] = []
    for concurrency in [int(c) for c in args.concurrency.split(",")]:
        if args.baseline_src:
            runs.append(
                measure(
                    "baseline", args.baseline_src, args.payments, concurrency, args.sandbox_process
                )
            )
        runs.append(measure("this tree", None, args.payments, concurrency, args.sandbox_process))
    report(runs, args.top)
    if any(run.payments < args.payments for run in runs):
        print("some payments were not created", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
