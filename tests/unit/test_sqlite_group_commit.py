"""The SQLite writer commits many callers' jobs together: each caller gets its own job's
result or error, only after the commit, and one job's failure undoes only that job."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
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
