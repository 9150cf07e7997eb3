"""A transport that answers from a function: connectors tested without a socket.

    def psp(request: HttpRequest) -> HttpAnswer:
        assert request.headers["idempotency-key"] == "k-1"
        return json_answer(402, {"error": {"code": "card_declined"}})

    connector = StripeConnector(settings, transport=MockTransport(psp))

The function may be async, and may raise `NotSent` or `NoAnswer` as the real transport
does. An async one that outlasts the call's timeout ends in `NoAnswer`, as a PSP that
answers too late does. Every request is kept, in order, in `requests`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from paymesh.connectors.transport import HttpAnswer, NoAnswer

__all__ = ["HttpRequest", "MockTransport", "json_answer"]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]  # names in lower case
    body: bytes | None
    timeout_seconds: float

    def json(self) -> Any:
        return msgspec.json.decode(self.body or b"null")


Handler = Callable[[HttpRequest], HttpAnswer | Awaitable[HttpAnswer]]


def json_answer(status: int, body: object, headers: Mapping[str, str] | None = None) -> HttpAnswer:
    return HttpAnswer(
        status, {"content-type": "application/json", **(headers or {})}, msgspec.json.encode(body)
    )


class MockTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout_seconds: float,
    ) -> HttpAnswer:
        request = HttpRequest(
            method, url, {k.lower(): v for k, v in headers.items()}, body, timeout_seconds
        )
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, HttpAnswer):
            return answer
        try:
            return await asyncio.wait_for(answer, timeout_seconds)
        except TimeoutError as exc:
            raise NoAnswer("TimeoutError") from exc

    async def aclose(self) -> None:
        self.closed = True
