"""The HTTP server paymesh runs: uvicorn on httptools, with the limits uvicorn does not have.

`build_config` is the one place the server is configured; `paymesh serve`, the demo and the
tests' in-thread server all use it.

uvicorn with httptools sets no bound on a request's headers (httptools buffers a header of
any size until its end) and no time limit before them: its keep-alive timer starts only after
a response and any byte stops it, so a client that sends one header byte a second holds a
connection, and a task, forever. `GuardedProtocol` adds, per connection:

- a header deadline: from the connection's start, or the end of the last response, to the end
  of the next request's headers. Past it, the connection is closed (with a 408 if a request
  had begun). Slow bodies are the intake's concern (their size) and the app's.
- a header size limit over the request line and every header: 431, then close. Counted as
  bytes arrive, so at most the limit and one network read are ever held.
- errors in the API's shape: what uvicorn answers in plain text (400 for bytes that are not
  HTTP, 503 past `limit_concurrency`, 500 when the app fails before it answers) comes out as
  {"error": {...}}, application/json. (The app answers its own failures through Starlette's
  handlers; `answered_in_api_shape` covers what gets past them, such as a cancellation.)

Body sizes, content types and card data are checked by the app (`intake.py`), which knows the
routes; an answer sent before the body was read ends with the connection closed, so the rest
is never read (nor buffered).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import msgspec
import uvicorn
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from paymesh.entrypoints.http.common import JSON, error_response
from paymesh.entrypoints.http.errors import (
    HeadersTooLarge,
    Overloaded,
    RequestTimeout,
    status_of,
)
from paymesh.service.errors import ApiError, BadRequest

__all__ = ["ServerLimits", "build_config"]

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ServerLimits:
    #: Request line and headers together. Ours are a few hundred bytes (PayPal's webhook
    #: signature headers are the longest, under 1 KiB); 16 KiB is Node's default and what
    #: proxies in front pass through.
    max_header_bytes: int = 16 * 1024
    #: Seconds from connection start or last response to the end of the next headers. A
    #: client on a slow link sends a few hundred bytes of headers in well under a second.
    header_timeout: float = 10.0
    #: Open connections (and running requests) before new requests get 503: bounds memory
    #: (each holds at most a body limit and a header limit) while far above what one process
    #: serves (a few hundred payments a second, each a few ms).
    limit_concurrency: int | None = 1000
    #: Connections the kernel queues before accept: uvicorn's default, sized for bursts.
    backlog: int = 2048
    #: Seconds an idle keep-alive connection stays open: uvicorn's default.
    keep_alive: int = 5


def build_config(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    limits: ServerLimits | None = None,
    loop: str = "uvloop",
    own_logging: bool = False,
) -> uvicorn.Config:
    """The uvicorn configuration paymesh runs with; serve it with
    `uvicorn.Server(build_config(...)).run()` (in the main thread it handles SIGINT/SIGTERM).
    `own_logging`: the caller has configured the root logger (`paymesh serve`, for
    `--log-format`) and uvicorn's loggers pass their lines to it instead of installing
    handlers of their own."""
    limits = limits or ServerLimits()
    return uvicorn.Config(
        answered_in_api_shape(app),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None if own_logging else uvicorn.config.LOGGING_CONFIG,
        loop=loop,
        http=guarded_protocol(limits),
        ws="none",
        lifespan="on",
        access_log=False,
        server_header=False,
        limit_concurrency=limits.limit_concurrency,
        backlog=limits.backlog,
        timeout_keep_alive=limits.keep_alive,
    )


def guarded_protocol(limits: ServerLimits) -> type[GuardedProtocol]:
    """`GuardedProtocol` with these limits (uvicorn builds protocols from a class)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


class _HeadersTooLarge(Exception):
    pass


def answered_in_api_shape(app: Any) -> Any:
    """`app`, but a request it fails before answering gets the API's 500, not uvicorn's
    plain-text one. The failure still reaches uvicorn, which logs it and closes."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, tracked)
        except (Exception, asyncio.CancelledError):
            if not started:
                response = error_response(
                    ApiError("an internal error occurred; it has been logged")
                )
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
            raise

    return guarded


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(
        Overloaded("the server is at its connection limit; retry after the Retry-After delay")
    )
    response.headers["Retry-After"] = "1"
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._app = self.app
        # Checked in on_headers_complete instead, to answer in the API's shape.
        self._capacity = self.limit_concurrency
        self.limit_concurrency = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # a request has begun and its headers have not ended
        self._header_bytes = 0  # its request line and headers, as parsed
        self._received_in_headers = 0  # bytes received while they had not ended
        self._refused = False

    # -- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                self._refuse(self._headers_too_large())
            else:
                # llhttp's reason is a fixed phrase ("Invalid header value char"), never input.
                log.info("refused a request that is not HTTP/1.1: %s", exc)
                self._refuse(
                    BadRequest(
                        f"the request is not valid HTTP/1.1: {exc}", code="http_request_invalid"
                    )
                )
            return
        if self._in_headers:
            # Inside a header httptools keeps every byte until the header ends: bound it here.
            self._received_in_headers += len(data)
            if self._received_in_headers > self.limits.max_header_bytes:
                self._refuse(self._headers_too_large())

    def send_400_response(self, msg: str) -> None:
        self._refuse(BadRequest(msg, code="http_request_invalid"))

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._received_in_headers = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        if self._header_bytes > self.limits.max_header_bytes:
            raise _HeadersTooLarge  # stops the parser; data_received answers 431
        capacity = self._capacity
        busy = capacity is not None and (
            len(self.connections) >= capacity or len(self.tasks) >= capacity
        )
        self.app = _overloaded if busy else self._app
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    # -- the header deadline ---------------------------------------------------------------

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered; its response re-arms the deadline
        if self._in_headers:
            self._refuse(
                RequestTimeout(
                    f"the request headers did not arrive within {self.limits.header_timeout:g} s"
                )
            )
        else:
            self.transport.close()  # idle: nothing to answer

    # -- answers of the server's own -------------------------------------------------------

    def _headers_too_large(self) -> ApiError:
        return HeadersTooLarge(
            f"the request line and headers are larger than {self.limits.max_header_bytes} bytes"
        )

    def _refuse(self, error: ApiError) -> None:
        """Answer in the API's error shape and close: what follows cannot be trusted."""
        self._refused = True
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        body = _encode(error.body())
        head = [STATUS_LINE[status_of(error)]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: ",
            JSON.encode(),
            b"\r\n",
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()
