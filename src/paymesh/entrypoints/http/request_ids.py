"""Request ids: every response carries `Request-Id` (`req_` and 24 hex digits, as Stripe
does), and every log line written while the request is handled carries it, with the payment
id when the path names one.

Always generated, never taken from the client: the id is what a merchant quotes to support
and what the logs are searched by, so it must be unique and ours; an id a client chose could
collide with another request's, or be crafted to poison log searches.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

from paymesh.entropy import token_hex
from paymesh.service.ids import working_on

HEADER = "Request-Id"


def new_request_id() -> str:
    return "req_" + token_hex(12)


class RequestContext:
    """The request being handled. `scope` is Starlette's: routing fills in its path
    parameters after this is made, so the payment id is read from it when a line is logged,
    costing nothing on requests that log nothing."""

    __slots__ = ("request_id", "scope")

    def __init__(self, request_id: str, scope: MutableMapping[str, Any]) -> None:
        self.request_id = request_id
        self.scope = scope

    @property
    def payment_id(self) -> str | None:
        params = self.scope.get("path_params")
        value = params.get("payment_id") if params else None
        return value if isinstance(value, str) else None


#: Set for each request by the observing middleware. uvicorn runs each request in its own
#: task (its own copy of the context), so a value never leaks into another request.
current: ContextVar[RequestContext | None] = ContextVar("paymesh_request", default=None)


class RequestContextFilter(logging.Filter):
    """Adds `request_id` (None outside a request) and `payment_id` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current.get()
        given = getattr(record, "payment_id", None)
        if context is None:
            record.request_id = getattr(record, "request_id", None)
            record.payment_id = given or working_on.get()
        else:
            record.request_id = context.request_id
            # The path's payment, else the one the service made in this request.
            record.payment_id = given or context.payment_id or working_on.get()
        return True
