"""The HTTP-target port: POST an event to a merchant's endpoint.

Returns the status and the endpoint's Retry-After (seconds) if it sent one; a redirect is
returned as its 3xx status, never followed. Raises `TargetUnreachable` when no answer came
(refused, reset, timed out, no such host) and `TargetRefused` when the url or the address it
resolves to is not allowed, before any connection is made.

The exception's message is recorded in the delivery's history, which merchants read through
the dead-letter API: it is one of a few fixed phrases ("target unreachable", "target address
not allowed"), never an OS error or an address, so a rule cannot be used to map which
internal hosts and ports answer.
"""

from __future__ import annotations

from typing import Protocol


class TargetUnreachable(Exception):
    pass


class TargetRefused(TargetUnreachable):
    """The target's url or address is not allowed: nothing was sent."""


class TargetSender(Protocol):
    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None]: ...

    async def aclose(self) -> None: ...
