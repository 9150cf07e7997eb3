"""`python -m paymesh.entrypoints.deliverer FD`: an embedded server's deliverer process,
started by the server itself (PAYMESH_DELIVERER_PROCESS), never by hand. Its settings come
pickled on stdin (they hold secrets); FD is its end of the line to the server
(`paymesh.adapters.deliverer_process`). Logging and tracing follow PAYMESH_LOG_FORMAT and
PAYMESH_TRACES, as the server's do when set through the environment."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import signal
import sys


def main() -> None:
    # Ctrl-C reaches the whole process group: the server stops, then closes the line, and
    # that is what stops this process, after the server has stopped routing to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = int(sys.argv[1])
    # Written by the server that started this process, into a pipe only the two share.
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301

    from paymesh.bootstrap import run_deliverer
    from paymesh.entrypoints.http.logs import configure_logging
    from paymesh.entrypoints.tracing_setup import configure_tracing, trace_mode

    configure_logging(None, "info")
    configure_tracing(trace_mode(None), "paymesh-deliverer")

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run_deliverer(settings, fd)

    import uvloop

    uvloop.run(run())


if __name__ == "__main__":
    main()
