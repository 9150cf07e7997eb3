"""What every request passes before routing: a bounded body, JSON on /v1, no card data.

One ASGI middleware, so no route can forget it:

- The body is read here, counted as it arrives, and refused with 413 once it passes the limit:
  at once from a `Content-Length` over it (nothing is read), or as soon as a chunked body
  crosses it. The routes get the whole body, never more than the limit, from memory. A body
  that takes longer than `BODY_TIMEOUT` to arrive is refused with 408: a client dripping
  one byte at a time would otherwise hold its connection and task for ever (the server's
  own deadline covers the headers only).
- A /v1 request with a body must say it is JSON (`application/json`, UTF-8 if a charset is
  named): 415 otherwise. A request without a body (cancel, approve) needs no Content-Type.
- A /v1 request whose path, query string, Idempotency-Key (stored) or JSON strings hold a
  card number gets 400 `card_data_not_allowed` naming the field, never the number; nothing
  after this sees it, so nothing stores, logs, echoes or sends it on. The dashboard's paths,
  queries and form fields are screened the same way.
- A /v1 query string naming a parameter twice gets 400: every parameter takes one value.

Webhooks are the PSPs' signed bodies: only their size is checked here.

An answer given before the body was read to its end closes the connection (the client may
still be sending; the server must not read the rest to find the next request).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.domain.card_numbers import contains_card_number, find_in_json
from paymesh.entrypoints.http.common import error_response
from paymesh.entrypoints.http.errors import (
    RequestTimeout,
    RequestTooLarge,
    UnsupportedMediaType,
)
from paymesh.service.errors import ApiError, BadRequest, CardDataRefused

KiB = 1024

#: /v1 bodies: a payment at its largest (50 metadata pairs at their longest, a 1,000-character
#: description) is under 32 KiB and a rule under 16 KiB; 256 KiB is also EventBridge's own
#: limit for one event, the largest thing POST /v1/rules/test is meant to try a pattern on.
API_BODY_LIMIT = 256 * KiB
#: Webhooks: a PSP decides their size. Adyen batches notification items, PayPal and Stripe
#: embed whole resources; 1 MiB is ample for those and still bounds what a forger can send.
WEBHOOK_BODY_LIMIT = 1024 * KiB


#: Seconds for a whole body to arrive: 1 MiB in 30 s is 35 KB/s, far below any PSP's link.
BODY_TIMEOUT = 30.0


def body_limit(path: str) -> int:
    return WEBHOOK_BODY_LIMIT if path.startswith("/webhooks/") else API_BODY_LIMIT


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


def _is_json(content_type: str) -> bool:
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def _pairs(query_string: bytes) -> list[tuple[str, str]]:
    """A query string's (or a form body's) names and values, parsed once for every check."""
    if not query_string:
        return []
    return parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)


def _query_card_param(pairs: list[tuple[str, str]]) -> str | None:
    """The name of the first query parameter holding a card number ("" for a name)."""
    for name, value in pairs:
        if contains_card_number(name):
            return ""
        if contains_card_number(value):
            return name
    return None


def _repeated_param(pairs: list[tuple[str, str]]) -> str | None:
    """The first query parameter named twice. Every /v1 parameter takes one value: a route
    reading one of several (Starlette's `get` gives the last) would accept `limit=abc&limit=8`
    while its schema says an integer, and act on whichever value it happened to read."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            return name
        seen.add(name)
    return None


def _body_card_param(body: bytes) -> str | None:
    """The path of the JSON string holding a card number, "" if the body is not JSON."""
    try:
        document = msgspec.json.decode(body)
    except (ValueError, RecursionError):  # msgspec's errors, bad UTF-8, nesting past the stack
        # The route will refuse it as bad JSON; a card number in it is still refused first.
        return "" if contains_card_number(body.decode("utf-8", "replace")) else None
    return find_in_json(document)


class Intake:
    def __init__(self, app: ASGIApp, body_timeout: float = BODY_TIMEOUT) -> None:
        self.app = app
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = _headers(scope)
        limit = body_limit(path)
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:  # the HTTP parser refuses these; a server without one might not
            length = 0
        has_body = chunked or length > 0
        api = path.startswith("/v1/") or path == "/v1"
        # The dashboard's forms (a search, a reviewer's note) are screened as the API is.
        dashboard = path.startswith("/dashboard/") or path == "/dashboard"

        if length > limit:
            await self._refuse(scope, receive, send, _too_large(limit), unread=True)
            return
        query = _pairs(scope.get("query_string", b"")) if api or dashboard else []
        if api or dashboard:
            if contains_card_number(path):
                await self._refuse(scope, receive, send, CardDataRefused("path"), has_body)
                return
            where = _query_card_param(query)
            if where is None and contains_card_number(headers.get("idempotency-key", "")):
                where = "Idempotency-Key"  # kept with the response it replays
            if where is not None:
                await self._refuse(scope, receive, send, CardDataRefused(where or None), has_body)
                return
        if api and (twice := _repeated_param(query)) is not None:
            await self._refuse(
                scope,
                receive,
                send,
                BadRequest(f"the query parameter {twice!r} is given more than once", param=twice),
                has_body,
            )
            return
        if api and has_body and not _is_json(headers.get("content-type", "")):
            await self._refuse(
                scope,
                receive,
                send,
                UnsupportedMediaType(
                    "a request body must be JSON: send Content-Type: application/json"
                ),
                unread=True,
            )
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await _read(receive, limit)
        except _TooLarge:
            await self._refuse(scope, receive, send, _too_large(limit), unread=True)
            return
        except TimeoutError:
            await self._refuse(
                scope,
                receive,
                send,
                RequestTimeout(f"the request body did not arrive within {self.body_timeout:g} s"),
                unread=True,
            )
            return
        except _Disconnected:
            return
        if api or dashboard:
            # The dashboard posts forms: their fields are read as a query string is.
            where = _body_card_param(body) if api else _query_card_param(_pairs(body))
            if where is not None:
                await self._refuse(scope, receive, send, CardDataRefused(where or None))
                return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    async def _refuse(
        scope: Scope, receive: Receive, send: Send, error: ApiError, unread: bool = False
    ) -> None:
        response = error_response(error)
        if unread:
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the request body is larger than this route's limit of {limit // KiB} KiB"
    )


async def _read(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        if len(body) > limit:
            raise _TooLarge
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read here, once; then whatever the server says (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
