"""The SQLite writer commits many callers' jobs together: each caller gets its own job's
result or error, only after the commit, and one job's failure undoes only that job."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from paymesh.adapters.sqlite.writer import WRITE_LOCK_SUFFIX, GroupCommitWriter


def _writer(tmp_path: Path) -> GroupCommitWriter:
    conn = sqlite3.connect(tmp_path / "w.db", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    return GroupCommitWriter(conn)


def _count(tmp_path: Path) -> list[int]:
    with sqlite3.connect(tmp_path / "w.db") as reader:
        return [k for (k,) in reader.execute("SELECT k FROM t ORDER BY k")]


async def test_concurrent_jobs_each_get_their_own_result_and_one_failure_stays_its_own(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path)

    def insert(k: int) -> Callable[[sqlite3.Connection], int]:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO t (k, v) VALUES (?, 'x')", (k,))
            if k == 7:
                raise ValueError("job 7 refuses")
            return k * 10

        return job

    try:
        results = await asyncio.gather(
            *(writer.submit(insert(k)) for k in range(200)), return_exceptions=True
        )
    finally:
        await asyncio.to_thread(writer.close)
    failed = [k for k, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [7]
    assert isinstance(results[7], ValueError) and str(results[7]) == "job 7 refuses"
    assert [r for k, r in enumerate(results) if k != 7] == [k * 10 for k in range(200) if k != 7]
    assert _count(tmp_path) == [k for k in range(200) if k != 7]


async def test_a_job_alone_in_its_commit_that_fails_leaves_nothing_and_the_next_one_commits(
    tmp_path: Path,
) -> None:
    """One job at a time (no savepoint for a batch of one): a failure halfway through the
    job undoes what it wrote, its caller gets its own error, and the writer goes on."""
    writer = _writer(tmp_path)

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (1, 'half')")
        raise ValueError("the second half refuses")

    def whole(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (k, v) VALUES (2, 'whole')")
        return 2

    try:
        with pytest.raises(ValueError, match="the second half refuses"):
            await writer.submit(half_then_fail)
        assert await writer.submit(whole) == 2
    finally:
        await asyncio.to_thread(writer.close)
    assert _count(tmp_path) == [2]


async def test_a_cancelled_callers_write_stands(tmp_path: Path) -> None:
    writer = _writer(tmp_path)

    def slow(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (k, v) VALUES (1, 'kept')")

    try:
        task = asyncio.create_task(writer.submit(slow))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A later job in the same writer still settles normally.
        assert await writer.submit(lambda conn: 42) == 42
    finally:
        await asyncio.to_thread(writer.close)
    assert _count(tmp_path) == [1]


def _locked_writer(path: Path) -> GroupCommitWriter:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    return GroupCommitWriter(conn, lock_path=f"{path}{WRITE_LOCK_SUFFIX}")


def _insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t (v) VALUES ('x')")


async def test_a_writer_waits_for_the_file_s_write_lock(tmp_path: Path) -> None:
    writer = _locked_writer(tmp_path / "w.db")
    held = os.open(f"{tmp_path / 'w.db'}{WRITE_LOCK_SUFFIX}", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process's writer, mid-commit
    job = asyncio.ensure_future(writer.submit(_insert))
    await asyncio.sleep(0.2)
    assert not job.done()
    fcntl.flock(held, fcntl.LOCK_UN)
    await asyncio.wait_for(job, 5)
    os.close(held)
    writer.close()


async def _held_then(
    writer: GroupCommitWriter, queued: Callable[[], list[asyncio.Task[int]]]
) -> list[int]:
    """Holds the writer in a job of its own while `queued` submits jobs, then lets it go:
    what `queued` submitted is in the queue together when the writer next takes a batch."""
    started, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> bool:
        started.set()
        return release.wait(5)

    blocker = asyncio.ensure_future(writer.submit(hold))
    assert await asyncio.to_thread(started.wait, 5)  # the writer is inside the blocker
    futures = queued()
    await asyncio.sleep(0)  # every submit has put its job in the queue
    release.set()
    await blocker
    return list(await asyncio.gather(*futures))


async def test_a_job_submitted_alone_commits_by_itself_with_no_savepoint(tmp_path: Path) -> None:
    """The jobs queued before it share a commit, and those after it another; it gets a commit
    of its own with no SAVEPOINT, so SQLite keeps no copy of the pages it changes (the
    fraud checkpoint's blob: tens of MB)."""
    conn = sqlite3.connect(tmp_path / "w.db", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    writer = GroupCommitWriter(conn)

    def insert(k: int, v: str = "x") -> Callable[[sqlite3.Connection], int]:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute(f"INSERT INTO t (k, v) VALUES ({k}, '{v}')")
            return k

        return job

    def queued() -> list[asyncio.Task[int]]:
        before = [asyncio.create_task(writer.submit(insert(k))) for k in range(5)]
        alone = asyncio.create_task(writer.submit(insert(5, "alone"), alone=True))
        after = [asyncio.create_task(writer.submit(insert(k))) for k in range(6, 9)]
        return [*before, alone, *after]

    try:
        assert await _held_then(writer, queued) == list(range(9))
    finally:
        await asyncio.to_thread(writer.close)
    commits: list[list[str]] = []
    for sql in statements:
        if sql == "BEGIN IMMEDIATE":
            commits.append([])
        elif sql != "COMMIT" and commits:
            commits[-1].append(sql)
    assert commits[1:] == [
        [
            s
            for k in range(5)
            for s in ("SAVEPOINT job", f"INSERT INTO t (k, v) VALUES ({k}, 'x')", "RELEASE job")
        ],
        ["INSERT INTO t (k, v) VALUES (5, 'alone')"],
        [
            s
            for k in range(6, 9)
            for s in ("SAVEPOINT job", f"INSERT INTO t (k, v) VALUES ({k}, 'x')", "RELEASE job")
        ],
    ]
    assert _count(tmp_path) == list(range(9))


def _bytes_written_by_this_thread() -> int:
    with open("/proc/thread-self/io") as io:
        return int(next(line for line in io if line.startswith("wchar:")).split()[1])


async def test_a_batch_s_savepoints_write_nothing_before_its_commit(tmp_path: Path) -> None:
    """Each job of a batch runs in a SAVEPOINT, for which SQLite keeps the original of every
    page the job changes. With SQLite's default those copies spill to a temporary file past
    64 KiB (under load, about 200 KB a payment, more than the WAL); the writer keeps them in
    memory. Measured on the writer's own thread, between a batch's first job and its last."""
    path = tmp_path / "w.db"
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    setup.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 500) for k in range(2000)])
    setup.close()
    writer = GroupCommitWriter(sqlite3.connect(path, check_same_thread=False, isolation_level=None))

    def rewrite_every_page(n: int) -> Callable[[sqlite3.Connection], int]:
        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE t SET v = ?", (str(n) * 500,)).rowcount

        return job

    def queued() -> list[asyncio.Task[int]]:
        mark = lambda conn: _bytes_written_by_this_thread()  # noqa: E731
        return [
            asyncio.create_task(writer.submit(mark)),
            *[asyncio.create_task(writer.submit(rewrite_every_page(n))) for n in range(4)],
            asyncio.create_task(writer.submit(mark)),
        ]

    try:
        first, *updated, last = await _held_then(writer, queued)
    finally:
        await asyncio.to_thread(writer.close)
    assert updated == [2000] * 4
    assert last - first < 4096  # not one page: about 1 MB a job with a temporary file


def _traced_writer(
    tmp_path: Path, commit_delay: float, busy_share: float = 0.0
) -> tuple[GroupCommitWriter, list[str]]:
    """A writer whose statements are kept; by default it counts the process as busy enough
    to wait (the CPU condition has a test of its own)."""
    conn = sqlite3.connect(tmp_path / "w.db", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    writer = GroupCommitWriter(conn, commit_delay=commit_delay, busy_share=busy_share)
    return writer, statements


def _commits(statements: list[str]) -> list[list[str]]:
    """The INSERTs of each commit, in order."""
    commits: list[list[str]] = []
    for sql in statements:
        if sql == "BEGIN IMMEDIATE":
            commits.append([])
        elif sql.startswith("INSERT"):
            commits[-1].append(sql)
    return commits


def _insert_k(k: int) -> Callable[[sqlite3.Connection], int]:
    def job(conn: sqlite3.Connection) -> int:
        conn.execute(f"INSERT INTO t (k, v) VALUES ({k}, 'x')")
        return k

    return job


def _burst(writer: GroupCommitWriter, keys: range) -> Callable[[], list[asyncio.Task[int]]]:
    """Jobs of as many callers as `keys`, submitted at once."""
    return lambda: [asyncio.create_task(writer.submit(_insert_k(k))) for k in keys]


async def test_one_caller_s_writes_in_a_row_never_wait_for_company(tmp_path: Path) -> None:
    """Thirty writes as fast as one caller can make them, each after the last one's commit:
    faster than one per `commit_delay`, but each batch is of one job, so there is no one to
    wait for. Waiting would take 30 x 2 s here."""
    writer, statements = _traced_writer(tmp_path, commit_delay=2.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for k in range(30):
            assert await writer.submit(_insert_k(k)) == k
    finally:
        await asyncio.to_thread(writer.close)
    assert loop.time() - started < 2.0
    assert _commits(statements) == [[f"INSERT INTO t (k, v) VALUES ({k}, 'x')"] for k in range(30)]


async def test_while_callers_write_together_a_lone_job_waits_for_company(tmp_path: Path) -> None:
    """Eight jobs of several callers came together (a batch with company, faster than one
    per `commit_delay`) in a busy process: the next job waits up to `commit_delay` before its
    commit, and a job submitted 200 ms after it shares that commit. With no delay, or in a
    process using less than `busy_share` of a core (this one, asleep), each has a commit of
    its own."""
    cases = (
        ("busy", 1.0, 0.0, [[0, 1]]),
        ("no delay", 0.0, 0.0, [[0], [1]]),
        ("not busy", 1.0, 0.7, [[0], [1]]),
    )
    for name, delay, busy_share, expected in cases:
        (tmp_path / name).mkdir()
        writer, statements = _traced_writer(tmp_path / name, delay, busy_share)
        try:
            await asyncio.sleep(0.15)  # a window for the writer to take the process's share
            burst = _burst(writer, range(100, 108))
            assert await _held_then(writer, burst) == list(range(100, 108))
            first = asyncio.create_task(writer.submit(_insert_k(0)))
            # Long enough for the first to be taken alone on a busy machine, well within
            # the delay.
            await asyncio.sleep(0.2)
            second = asyncio.create_task(writer.submit(_insert_k(1)))
            assert list(await asyncio.gather(first, second)) == [0, 1]
        finally:
            await asyncio.to_thread(writer.close)
        after_burst = _commits(statements)[2:]
        assert after_burst == [
            [f"INSERT INTO t (k, v) VALUES ({k}, 'x')" for k in c] for c in expected
        ], name


async def test_an_idle_writer_commits_a_job_at_once(tmp_path: Path) -> None:
    """A burst, then a quiet spell longer than `_SIBLINGS` gaps of `commit_delay`: the next
    job is committed without waiting, although the last batches had company."""
    writer, _ = _traced_writer(tmp_path, commit_delay=0.25)
    loop = asyncio.get_running_loop()
    try:
        await _held_then(writer, _burst(writer, range(100, 110)))
        await asyncio.sleep(2.0)  # longer than 7 gaps of 0.25 s
        started = loop.time()
        assert await writer.submit(_insert_k(0)) == 0
        took = loop.time() - started
    finally:
        await asyncio.to_thread(writer.close)
    assert took < 0.25
