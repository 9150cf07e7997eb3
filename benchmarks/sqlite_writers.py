"""Two processes writing one SQLite file: how often does the second get its turn?

The embedded server's deliverer process (and a CLI command beside a server) writes the same
database file as the server. WAL mode lets one writer in at a time; the question is how long
the other waits. One process ("busy") commits back to back, as a server's group-commit writer
does under load; the other ("second") commits, pauses 2 ms, commits again. Each commit is
`BEGIN IMMEDIATE`, 10 rows, `COMMIT` with `synchronous=FULL`, as paymesh's writer does.

Two ways of taking turns, run alternately `--rounds` times for `--seconds` each:

- `busy-handler`: SQLite's own: a writer that finds the file locked sleeps 1, 2, 5, 10, ...
  up to 100 ms between tries (`busy_timeout`), and mostly wakes to find it locked again;
- `write-lock`: paymesh's (`adapters/sqlite/writer.py`): each commit holds an `flock` on
  `<database>.write.lock`, and the kernel wakes the waiter as soon as it is released.

    .venv/bin/python benchmarks/sqlite_writers.py            # 2 rounds of 5 s each way
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from paymesh.adapters.sqlite.writer import WRITE_LOCK_SUFFIX

MODES = ("busy-handler", "write-lock")


def _writer(path: str, mode: str, role: str, seconds: float, results: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA synchronous=FULL")
    lock = os.open(path + WRITE_LOCK_SUFFIX, os.O_RDWR | os.O_CREAT, 0o600)
    locking = mode == "write-lock"
    waits: list[float] = []
    row = os.urandom(200)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        asked = time.monotonic()
        if locking:
            fcntl.flock(lock, fcntl.LOCK_EX)
        conn.execute("BEGIN IMMEDIATE")
        waits.append(time.monotonic() - asked)
        conn.executemany("INSERT INTO t (who, x) VALUES (?, ?)", [(role, row)] * 10)
        conn.execute("COMMIT")
        if locking:
            fcntl.flock(lock, fcntl.LOCK_UN)
        if role == "second":
            time.sleep(0.002)
    waits.sort()
    results.put(
        (role, len(waits), waits[len(waits) // 2], waits[int(len(waits) * 0.99)], waits[-1])
    )


def run(mode: str, seconds: float, directory: Path) -> dict[str, tuple[int, float, float, float]]:
    path = str(directory / f"{mode}.db")
    for suffix in ("", "-wal", "-shm", WRITE_LOCK_SUFFIX):
        Path(path + suffix).unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, x BLOB)")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    writers = [
        context.Process(target=_writer, args=(path, mode, role, seconds, results))
        for role in ("busy", "second")
    ]
    for writer in writers:
        writer.start()
    out = {}
    for _ in writers:
        role, commits, p50, p99, longest = results.get(timeout=seconds + 60)
        out[role] = (commits, p50, p99, longest)
    for writer in writers:
        writer.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    seconds_commits: dict[str, list[int]] = {mode: [] for mode in MODES}
    print("mode          process  commits  wait p50 ms  p99 ms  longest ms")
    with tempfile.TemporaryDirectory(prefix="paymesh-writers-") as directory:
        for _ in range(args.rounds):
            for mode in MODES:
                out = run(mode, args.seconds, Path(directory))
                for role in ("busy", "second"):
                    commits, p50, p99, longest = out[role]
                    print(
                        f"{mode:13} {role:7} {commits:8,} {p50 * 1000:12.2f} "
                        f"{p99 * 1000:7.1f} {longest * 1000:11.1f}"
                    )
                seconds_commits[mode].append(out["second"][0])
    base = sum(seconds_commits["busy-handler"]) or 1
    print(
        f"second process's commits, write-lock / busy-handler: "
        f"{sum(seconds_commits['write-lock']) / base:.1f}x"
    )


if __name__ == "__main__":
    main()
