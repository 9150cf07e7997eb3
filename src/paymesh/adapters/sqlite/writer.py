"""Group commit: one writer thread, many changesets per fsync.

With `synchronous=FULL` every COMMIT waits for the disk. Committing each request on its own
would cap throughput at the disk's fsync rate; instead the writer takes every job queued while
the previous commit was syncing, runs each inside its own SAVEPOINT (so one job's conflict
rolls back only that job), and commits them together. Each caller's future resolves only
after the COMMIT that made its job durable.

Writers in several processes over one file (the deliverer process, a CLI command beside a
server) take turns through an advisory lock on `<database>.write.lock`, held from BEGIN to
COMMIT. SQLite's own busy handler sleeps 1, 2, 5, 10... up to 100 ms between tries, so a
writer that finds the file locked by a busy one mostly sleeps through the short gaps between
its commits: in `benchmarks/sqlite_writers.py` the second of two processes made 34-37
commits in 5 s beside a busy one, waiting up to 3.4 s. The kernel wakes a lock's waiter as
soon as it is free: 1,180-1,360 commits, waiting 0.2 ms at the median. The lock goes with
the process that holds it, so a kill -9 leaves nothing to clean up.

A job's SAVEPOINT makes SQLite keep the original of each page the job changes, to roll back
to. Those copies went to a temporary file, page by page: under load 4 of every 5 of the
writer's write calls, about 200 KB a payment, more than the WAL itself. The writer's
connection keeps them in memory (`temp_store=MEMORY`), where they live until the job's
RELEASE. A job that may change many existing pages (a blob tens of MB long, a purge) is
submitted `alone`: it commits by itself, with no savepoint and so no copies.

A commit has a cost of its own, whatever it holds: the statements around it, the WAL's
frame writes (two system calls a page; jobs of one commit share pages) and the fsync. At a
steady 180 payments/s the jobs came about 0.8 ms apart and the writer woke for nearly each
one: 670-1,350 commits a second of 1.3-2 jobs, 190-410 us of the writer's CPU each. So, like
PostgreSQL's `commit_delay`, the writer can wait a little (`commit_delay`) for more jobs
before it commits: then 210-280 commits a second of 4.5-5.6 jobs, 550-930 us each. It waits
only while jobs arrive faster than one per `commit_delay` (the last `_SIBLINGS` of them, on
average) from more than one caller (one of the last `_RECENT_BATCHES` batches held several),
and while the process uses at least `_BUSY_SHARE` of a core: then the wait is expected to
bring company, and the CPU it saves is what callers would otherwise queue for. An idle
server commits at once, and so does one caller's string of writes, each waiting for the
last: its batches are all of one job, so once waits bring no one, the writer stops waiting.
A job submitted `alone` ends the wait. Nothing changes for durability: a caller still
returns only after its COMMIT.

The wait is off by default (0). Before the CPU condition, it cost 4-7 ms of API p50 at 100
payments/s (the server at about half a core); with it, nothing measurable there. At 180/s it
saves some CPU and costs a few ms of p50 (`benchmarks/README.md`, "Waiting for company").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class _Job(NamedTuple):
    run: Callable[[sqlite3.Connection], Any]
    fut: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    alone: bool  # commits by itself, with no savepoint (see the module doc)


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


def _settle(outcomes: list[_Outcome]) -> None:
    for fut, result, error in outcomes:
        if fut.done():  # the caller was cancelled; the write stands regardless
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)


WRITE_LOCK_SUFFIX = ".write.lock"


#: The writer waits for company while the last this-many jobs came less than `commit_delay`
#: apart on average, and one of the last `_RECENT_BATCHES` batches had company without
#: being asked (see the module doc).
_SIBLINGS = 8
_RECENT_BATCHES = 4
#: ... and the process used at least this share of a core over the last `_BUSY_WINDOW`
#: seconds: below it, CPU is not what its callers wait for.
_BUSY_SHARE = 0.7
_BUSY_WINDOW = 0.1


class GroupCommitWriter:
    def __init__(
        self,
        conn: sqlite3.Connection,
        max_batch: int = 512,
        lock_path: str | None = None,
        commit_delay: float = 0.0,
        busy_share: float = _BUSY_SHARE,
    ) -> None:
        self._conn = conn
        #: Seconds the writer may wait for more jobs before it commits (see the module doc);
        #: 0 commits each batch as soon as it is taken.
        self._commit_delay = commit_delay
        #: When the last `_SIBLINGS` jobs were taken (monotonic seconds).
        self._arrivals: collections.deque[float] = collections.deque(maxlen=_SIBLINGS)
        #: Whether each of the last `_RECENT_BATCHES` batches held more than one job.
        self._shared: collections.deque[bool] = collections.deque(maxlen=_RECENT_BATCHES)
        #: The share of a core the process must use for the writer to wait (see the module doc).
        self._busy_share = busy_share
        #: The process's CPU time and the clock when its share was last taken.
        self._cpu_mark = (time.process_time(), time.monotonic())
        self._busy = 0.0  # the process's last measured share of a core
        # The savepoints' page copies in memory, not in a temporary file (see the module doc).
        conn.execute("PRAGMA temp_store=MEMORY")
        self._max_batch = max_batch
        # The file's lock, shared with every writer of the database (see the module doc).
        self._lock_fd = (
            None if lock_path is None else os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="paymesh-sqlite-writer", daemon=True)
        self._thread.start()

    async def submit(self, job: Callable[[sqlite3.Connection], T], *, alone: bool = False) -> T:
        """`job` run in the writer's next commit, durable when this returns. `alone`: in a
        commit of its own, for a job that may change many pages (see the module doc)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(job, fut, loop, alone))
        return await fut

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn to write (a no-op without a lock file)."""
        fd = self._lock_fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            # Only the batch holds its jobs, and `_commit` empties it before it wakes their
            # callers: a job's closure can hold a big value (the fraud checkpoint's tens of
            # MB), which its caller, once woken, takes to be free (it trims the heap).
            del first
            # With no delay (the default) none of the waiting's bookkeeping is done.
            waits = self._commit_delay > 0
            deadline = self._company_deadline() if waits and not batch[0].alone else None
            while not batch[0].alone and len(batch) < self._max_batch:
                try:
                    if deadline is None:
                        nxt = self._jobs.get_nowait()
                    else:
                        wait = deadline - time.monotonic()
                        nxt = self._jobs.get(timeout=wait) if wait > 0 else self._jobs.get_nowait()
                except queue.Empty:
                    break
                if waits:
                    self._arrivals.append(time.monotonic())
                if nxt is None:
                    stopping = True
                    break
                if nxt.alone:  # to commit alone: the batch so far first, then it by itself
                    self._commit(batch)
                    batch = [nxt]
                    del nxt
                    break
                batch.append(nxt)
                del nxt
            if waits:
                self._shared.append(len(batch) > 1)
            self._commit(batch)

    def _company_deadline(self) -> float | None:
        """Notes a batch's first job; when to stop waiting for more, or None to commit at once:
        the wait is worth it only while jobs arrive faster than one per `commit_delay`, from
        several callers, in a busy process (see the module doc). Jobs queued while a commit
        ran are taken back to back and count as arriving together, which is what they did as
        far as batching goes."""
        now = time.monotonic()
        arrivals = self._arrivals
        arrivals.append(now)
        delay = self._commit_delay
        if len(arrivals) < _SIBLINGS or not any(self._shared):
            return None  # quiet, or one caller's writes in a row: no one to wait for
        if now - arrivals[0] >= delay * (_SIBLINGS - 1):  # a mean gap of `delay` or more
            return None
        cpu_then, then = self._cpu_mark
        if now - then >= _BUSY_WINDOW:
            cpu = time.process_time()
            self._busy = (cpu - cpu_then) / (now - then)
            self._cpu_mark = (cpu, now)
        return now + delay if self._busy >= self._busy_share else None

    @staticmethod
    def _apply(
        conn: sqlite3.Connection,
        batch: list[_Job],
        outcomes: list[tuple[Any, BaseException | None]],
    ) -> None:
        """Each job in a savepoint of its own. A function of its own so that nothing of the
        last job outlives it in `_commit`'s frame.

        A batch of one job (most of them, when the writer is not busy) needs no savepoint:
        its failure undoes the whole transaction, which is the job, and `_commit` gives it
        the job's own exception. Two statements fewer a commit."""
        if len(batch) == 1:
            outcomes.append((batch[0].run(conn), None))
            return
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                outcomes.append((job.run(conn), None))
                conn.execute("RELEASE job")
            except Exception as exc:  # the job's own failure: undo only the job
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((None, exc))

    def _commit(self, batch: list[_Job]) -> None:
        conn = self._conn
        outcomes: list[tuple[Any, BaseException | None]] = []
        with self._turn():
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._apply(conn, batch, outcomes)
                conn.execute("COMMIT")
            except Exception as exc:  # the commit itself failed: nothing in the batch is durable
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                outcomes = [(None, exc)] * len(batch)
        waiting = [(job.fut, job.loop) for job in batch]
        batch.clear()  # the jobs go before their callers wake (see `_run`)
        # One wake-up of each caller's loop for the whole batch, not one per job: each is a
        # write to the loop's self-pipe, and a batch holds a dozen jobs under load.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (fut, loop), (result, error) in zip(waiting, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((fut, result, error))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle, settled)
