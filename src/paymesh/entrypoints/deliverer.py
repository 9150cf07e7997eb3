"""`python -m paymesh.entrypoints.deliverer FD SERVER_PID`: an embedded server's deliverer
process, started by the server itself (PAYMESH_DELIVERER_PROCESS), never by hand. Its
settings come pickled on stdin (they hold secrets); FD is its end of the line to the server
(`paymesh.adapters.deliverer_process`). Logging and tracing follow PAYMESH_LOG_FORMAT,
PAYMESH_LOG_LEVEL and PAYMESH_TRACES, which `paymesh serve` sets from its flags.

It stops when the line reaches its end (the server closed it, or died), and only then:
SIGINT and SIGTERM, which a terminal or a service manager send to the whole group, are
ignored, so the server stops routing to it before it goes. If the server dies, the kernel
kills it too (PR_SET_PDEATHSIG), whatever it is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with(server_pid: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:  # it died before the line above: nobody to serve
        os._exit(0)


def main() -> None:
    fd, server_pid = int(sys.argv[1]), int(sys.argv[2])
    _die_with(server_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Written by the server that started this process, into a pipe only the two share.
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301

    from paymesh.bootstrap import run_deliverer
    from paymesh.entrypoints.http.logs import configure_logging
    from paymesh.entrypoints.tracing_setup import configure_tracing, trace_mode

    configure_logging(None, os.environ.get("PAYMESH_LOG_LEVEL", "info"))
    configure_tracing(trace_mode(None), "paymesh-deliverer")

    async def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await run_deliverer(settings, fd)

    import uvloop

    uvloop.run(run())


if __name__ == "__main__":
    main()
