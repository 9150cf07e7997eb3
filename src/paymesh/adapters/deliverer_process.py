"""An embedded server's deliverer process (`PAYMESH_DELIVERER_PROCESS`): the deliveries of
its events run in a second process over the same SQLite file, so the server uses a second
core (issue 18).

One socket pair joins the server and its deliverer; each byte on it is a wake-up:

- `d` (server to deliverer): deliveries were routed, claim them now rather than at the poll;
- `r` (server to deliverer): a merchant's rule changed, re-read the rules before delivering
  (an HTTP delivery is signed with its rule's secret);
- `o` (deliverer to server): the deliverer committed events (a payment it drove), route them.

End of file means the other side is gone. The deliverer then stops at once, and the kernel
kills it if its server dies (PR_SET_PDEATHSIG), so a server killed with SIGKILL does not
leave one delivering next to its successor's. A lock file makes that certain: the deliverer
holds an `flock` on it for its life (the kernel drops it when the process dies), and a
starting server waits for it to be free before it releases the leases a dead process held;
a deliverer that finds its server gone once it has the lock claims nothing. A deliverer that
exits while its server runs is started again, once the leases it held are freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from paymesh.adapters.metrics.beside import exposition_file
from paymesh.ports.bus import Rule

log = logging.getLogger(__name__)

ROUTED = b"d"
RULES_CHANGED = b"r"
EVENTS = b"o"
#: Module run as the deliverer: `python -m MODULE FD`, its settings pickled on stdin.
ENTRYPOINT = "paymesh.entrypoints.deliverer"
LOCK_SUFFIX = ".deliverer.lock"


class WakeLine:
    """One end of the socket pair. Sending never blocks: a full buffer already holds
    wake-ups the other side has yet to read, and one more would say nothing new."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._reading = False
        self._on_flag: Callable[[bytes], None] = lambda flag: None
        self._on_close: Callable[[], object] = lambda: None

    def send(self, flag: bytes) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
            self.sock.send(flag)

    def listen(self, on_flag: Callable[[bytes], None], on_close: Callable[[], object]) -> None:
        self._on_flag, self._on_close = on_flag, on_close
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self.catch_up)
        self._reading = True

    def catch_up(self) -> None:
        """Hear everything already sent, now. A byte sent before the other side committed
        something is in this socket by the time this side can see the commit: reading here
        after seeing it leaves no wake-up behind the loop's next turn."""
        while self._reading:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
                self._reading = False
                self._on_close()
                return
            for flag in sorted(set(data)):
                self._on_flag(bytes([flag]))

    def gone(self) -> bool:
        """Whether the other side has closed its end (nothing is consumed)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def close(self) -> None:
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()


class DelivererLock:
    """The lock file a deliverer holds for its life, its pid inside, beside the database
    file it delivers from (`DATABASE.deliverer.lock`)."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + LOCK_SUFFIX)
        self._fd: int | None = None

    def hold(self) -> None:
        """The deliverer's side: take the lock (waiting for a previous holder to die)."""
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    async def wait_free(self, patience: float = 10.0) -> None:
        """The server's side, before it takes over what dead processes left: wait until no
        deliverer holds the lock. One that outlives `patience` (its server is gone, so it
        should have stopped) is killed."""
        deadline = time.monotonic() + patience
        while not self._free():
            if time.monotonic() > deadline:
                pid = self._holder()
                log.error("a deliverer (pid %s) outlived its server; killing it", pid)
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + patience
            await asyncio.sleep(0.05)

    def _free(self) -> bool:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing drops the lock taken just now
        return True

    def _holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None


class DelivererProcess:
    """The server's side: starts the deliverer, wakes it, hears from it, starts it again if
    it dies, stops it at shutdown. `settings` is the deliverer's settings, pickled (they
    carry secrets: they go through a pipe, never a file or the command line)."""

    def __init__(
        self,
        settings: bytes,
        database: Path,
        on_events: Callable[[], None],
        release: Callable[[], Awaitable[object]],
    ) -> None:
        """`release`: frees the deliveries a dead deliverer had leased (the server leases
        none of its own in this mode), so its successor runs them at once, not in 60 s."""
        self.settings = settings
        self.lock = DelivererLock(database)
        #: Where the deliverer publishes its metrics for the server's scrape.
        self.metrics_path = exposition_file(database)
        self.on_events = on_events
        self.release = release
        self._line: WakeLine | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        if self._line is not None:
            self._line.send(ROUTED)

    def rules_changed(self) -> None:
        if self._line is not None:
            self._line.send(RULES_CHANGED)

    def start(self) -> None:
        # An earlier server's deliverer's counts are not this server's.
        with contextlib.suppress(FileNotFoundError):
            self.metrics_path.unlink()
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="deliverer")

    async def _supervise(self) -> None:
        while not self._stopping:
            try:
                await self._run_once()
            except Exception:  # could not start one (no fds, no memory): try again
                log.exception("starting the deliverer process failed; trying again")
            if self._stopping:
                return
            await asyncio.sleep(1.0)
            try:
                await self.lock.wait_free()
                await self.release()
            except Exception:
                log.exception("freeing a dead deliverer's deliveries failed; they wait out leases")

    async def _run_once(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                ENTRYPOINT,
                str(theirs.fileno()),
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        line = WakeLine(ours)
        try:
            assert process.stdin is not None
            process.stdin.write(self.settings)
            with contextlib.suppress(ConnectionError):
                await process.stdin.drain()
            process.stdin.close()
            line.listen(self._heard, lambda: None)
            self._line = line
            line.send(ROUTED)  # whatever is pending already
            code = await process.wait()
        finally:
            self._line = None
            line.close()
        if not self._stopping:
            log.error("the deliverer process exited (code %s); starting another", code)

    def _heard(self, flag: bytes) -> None:
        if flag == EVENTS:
            self.on_events()

    async def stop(self, patience: float = 10.0) -> None:
        """Close the line (the deliverer stops on its end of file) and wait for it to go."""
        self._stopping = True
        if self._line is not None:
            self._line.close()
            self._line = None
        process = self._process
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), patience)
            except TimeoutError:
                log.error("the deliverer did not stop in %.0f s; killing it", patience)
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


class ServerLine:
    """The deliverer's side of the line: flags heard from the server, and end of file."""

    def __init__(self, fd: int, on_routed: Callable[[], None], on_gone: Callable[[], object]):
        self.line = WakeLine(socket.socket(fileno=fd))
        self.on_routed = on_routed
        self.on_gone = on_gone
        self.rules_stale = False

    def start(self) -> None:
        self.line.listen(self._heard, self.on_gone)

    def _heard(self, flag: bytes) -> None:
        if flag == RULES_CHANGED:
            self.rules_stale = True
        self.on_routed()

    def catch_up(self) -> None:
        self.line.catch_up()

    def gone(self) -> bool:
        return self.line.gone()

    def events_committed(self) -> None:
        self.line.send(EVENTS)

    def close(self) -> None:
        self.line.close()


class DelivererRules:
    """A `RuleMirror` for the embedded server with a deliverer: a merchant's rule saved or
    deleted (already in the store) tells the deliverer to re-read the rules."""

    def __init__(self, deliverer: DelivererProcess) -> None:
        self.deliverer = deliverer

    async def put(self, rule: Rule) -> None:
        self.deliverer.rules_changed()

    async def delete(self, merchant_id: str, name: str) -> None:
        self.deliverer.rules_changed()
