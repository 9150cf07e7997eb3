"""Infrastructure failures, said in one line: the database, the bus, the port.

An operator who starts paymesh against a database that is down needs "cannot reach the
database at postgresql://127.0.0.1:5432/...: connection refused", not forty lines of asyncpg.
`check_infrastructure` finds the usual three before a process starts; `describe` names one
that happens later, from where in the code it was raised.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from types import TracebackType

    from paymesh.config import Settings

#: Seconds a check waits for the database or the bus: a firewall that drops packets must not
#: hang the start.
CHECK_TIMEOUT = 5.0


def redact(url: str) -> str:
    """The URL without its password: error lines end up in logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "no answer"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _modules(tb: TracebackType | None) -> list[str]:
    names = []
    while tb is not None:
        names.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    return names


def describe(exc: BaseException) -> str | None:
    """One line for an infrastructure failure; None for anything else (a bug: let it show)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    modules = [m for e in chain for m in _modules(e.__traceback__)]
    kinds = {type(e).__module__.split(".")[0] for e in chain}
    infra = any(isinstance(e, (OSError, TimeoutError)) for e in chain) or bool(
        kinds & {"asyncpg", "nats"}
    )
    if not infra:
        return None
    root = chain[-1]
    if "nats" in kinds or any(m.startswith(("nats", "paymesh.adapters.nats")) for m in modules):
        return f"cannot reach the NATS bus: {_reason(root)}"
    if "asyncpg" in kinds or any(
        m.startswith(("asyncpg", "paymesh.adapters.postgres")) for m in modules
    ):
        return f"cannot reach the database: {_reason(root)}"
    if isinstance(root, OSError) and root.errno == errno.EADDRINUSE:
        return f"the address is already in use: {root.strerror}"
    if isinstance(root, OSError):
        return f"{root.strerror or _reason(root)}" + (f": {root.filename}" if root.filename else "")
    return None


def port_problem(host: str, port: int) -> str | None:
    """Whether the server could listen there: bound and let go at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT is not "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another paymesh serve?)"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


async def _database_problem(settings: Settings) -> str | None:
    if not settings.uses_postgres:
        return None  # SQLite is a file: opening it says what is wrong, in one line
    import asyncpg

    assert settings.database is not None
    try:
        conn = await asyncpg.connect(settings.database, timeout=CHECK_TIMEOUT)
    except Exception as exc:
        return f"cannot reach the database at {redact(settings.database)}: {_reason(exc)}"
    await conn.close()
    return None


async def _bus_problem(settings: Settings) -> str | None:
    if settings.bus is None:
        return None
    import nats

    async def quiet(_: Exception) -> None:  # the failure is reported below, once
        return None

    try:
        # max_reconnect_attempts=0 would mean "for ever" to nats-py's server selection.
        nc = await asyncio.wait_for(
            nats.connect(
                settings.bus,
                connect_timeout=CHECK_TIMEOUT,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                allow_reconnect=False,
                error_cb=quiet,
            ),
            CHECK_TIMEOUT * 2,
        )
    except Exception as exc:
        return f"cannot reach the NATS bus at {redact(settings.bus)}: {_reason(exc)}"
    await nc.close()
    return None


def check_infrastructure(
    settings: Settings, host: str | None = None, port: int | None = None
) -> str | None:
    """The first of: the port taken, the database down, the bus down; None if all is well."""
    if host is not None and port is not None:
        problem = port_problem(host, port)
        if problem:
            return problem

    async def remote() -> str | None:
        return await _database_problem(settings) or await _bus_problem(settings)

    return asyncio.run(remote())
