"""How connectors reach a PSP: one HTTP transport per process, and its failures translated,
once for every connector, into the two facts the service needs: may a retry help
(`retryable`), and may the PSP have acted (`outcome_unknown`).

A connector only translates: it builds the PSP's request and reads the PSP's answer. The
transport sends; one instance (one connection pool) serves every PSP in a process, each call
with its PSP's own timeout. `AiohttpTransport` is the real one; `MockTransport` answers from a
function, so a connector is tested without a socket.

    transport raises          PspError
    NotSent                   code connection_error, retryable, nothing done
    NoAnswer                  code timeout, retryable, outcome unknown (the PSP may have acted;
                              only a sync with the same idempotency key can tell), unless the
                              call cannot move money (fetching a token)

Any HTTP status is an answer, not a transport failure: what a 5xx or a 429 means is each
PSP's to say.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from paymesh.ports.connector import PspError

__all__ = [
    "HttpAnswer",
    "HttpTransport",
    "NoAnswer",
    "NotSent",
    "TransportError",
    "psp_transport_errors",
]


class HttpAnswer(NamedTuple):
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes


class TransportError(Exception):
    """No answer came back. `reason` names what happened, never what was sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotSent(TransportError):
    """The request never reached the server (refused, unreachable, connect timeout): the
    server did nothing."""


class NoAnswer(TransportError):
    """The request may have reached the server, but no whole answer came back (read timeout,
    connection dropped): the server may have acted on it."""


class HttpTransport(Protocol):
    """Sends one HTTP request and returns its answer, whatever the status.

    Raises `NotSent` or `NoAnswer` when no answer came back, and nothing else for that; the
    whole exchange (connecting, sending, reading the body) is bounded by `timeout_seconds`.
    Safe to share between connectors and concurrent calls. `aclose` is for whoever made it.
    """

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout_seconds: float,
    ) -> HttpAnswer: ...

    async def aclose(self) -> None: ...


@contextmanager
def psp_transport_errors(
    psp: str, display_name: str, outcome_unknown: bool = True
) -> Iterator[None]:
    """`outcome_unknown=False` for calls that cannot move money (fetching a token)."""
    try:
        yield
    except NotSent as exc:
        # Nothing reached the PSP: safe to call this a plain failure.
        raise PspError(
            psp, f"cannot reach {display_name}: {exc.reason}", code="connection_error"
        ) from exc
    except NoAnswer as exc:
        # The request may have arrived and been acted on; only a sync can tell.
        raise PspError(
            psp,
            f"no answer from {display_name}: {exc.reason}",
            code="timeout",
            outcome_unknown=outcome_unknown,
        ) from exc
