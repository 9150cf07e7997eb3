"""The HTTP-target port: POST an event to a merchant's endpoint.

Returns the status and the endpoint's Retry-After (seconds) if it sent one; raises
`TargetUnreachable` when no answer came (refused, reset, timed out).
"""

from __future__ import annotations

from typing import Protocol


class TargetUnreachable(Exception):
    pass


class TargetSender(Protocol):
    async def post(self, url: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int, float | None]: ...

    async def aclose(self) -> None: ...
