"""The request pipeline every Orders and Payments endpoint goes through.

    bearer token -> injected 500/429? -> decode JSON -> claim PayPal-Request-Id
      -> latency -> execute -> remember the resource -> held answer (timeout fault)? -> respond

Injected errors come before anything is decoded or claimed, so they change
nothing and leave the request id free. The timeout fault comes last: the work
is done and remembered, only the answer is late, which is the case a client
survives by retrying with the same `PayPal-Request-Id`. Every answer carries a
`Paypal-Debug-Id` header, as PayPal's do.

Faults apply to this money-moving API only: the OAuth token endpoint and the
webhook tools answer reliably, so an injected fault always lands on the call
a test aims it at.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from paymesh.sandbox.faults import FaultInjector, Rejection
from paymesh.sandbox.lifecycle import add_latency, client_gone
from paymesh.sandbox.paypal.calls import Call, Endpoint, Later
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.events import EventPublisher
from paymesh.sandbox.paypal.ids import debug_id
from paymesh.sandbox.paypal.oauth import TokenServer
from paymesh.sandbox.paypal.objects import Urls
from paymesh.sandbox.paypal.state import Answer, Brief, Merchants

__all__ = ["Operation", "PayPalApi", "error_response", "json_response", "sandbox_urls"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Operation:
    """An endpoint and its "API call type", the scope of a PayPal-Request-Id (None: a read)."""

    endpoint: Endpoint
    call_type: str | None = None


def sandbox_urls(request: Request) -> Urls:
    """The sandbox's absolute base URL, including the prefix it is mounted under."""
    url = request.url
    return Urls(f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}")


def json_response(status: int, body: bytes, debug: str | None = None) -> Response:
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"Paypal-Debug-Id": debug or debug_id()},
    )


def error_response(error: PayPalError) -> Response:
    debug = debug_id()  # the same in the header and the body, as PayPal's
    return json_response(error.status, error.body(debug), debug)


class PayPalApi:
    def __init__(
        self,
        tokens: TokenServer,
        merchants: Merchants,
        faults: FaultInjector,
        events: EventPublisher,
        later: Later,
        echeck_delay_s: float,
    ) -> None:
        self._tokens = tokens
        self._merchants = merchants
        self._faults = faults
        self._events = events
        self._later = later
        self._echeck_delay_s = echeck_delay_s

    def handler(self, operation: Operation) -> Handler:
        async def handle(request: Request) -> Response:
            return await self._handle(request, operation)

        return handle

    async def _handle(self, request: Request, operation: Operation) -> Response:
        faults = self._faults.draw()
        request_id = request.headers.get("paypal-request-id") if operation.call_type else None
        try:
            client_id = self._tokens.client_for(request.headers.get("authorization"))
            if faults.rejection is not None:
                raise _rejection(faults.rejection)
            body = await _json_body(request)
        except PayPalError as error:
            await add_latency(faults.latency_s)
            return error_response(error)
        merchant = self._merchants.get(client_id)
        call = Call(
            merchant=merchant,
            merchants=self._merchants,
            events=self._events,
            later=self._later,
            urls=sandbox_urls(request),
            body=body,
            path=dict(request.path_params),
            request_id=request_id,
            echeck_delay_s=self._echeck_delay_s,
        )
        representation = "return=representation" in request.headers.get("prefer", "")
        if request_id is None or operation.call_type is None:
            await add_latency(faults.latency_s)
            response = self._execute(call, operation.endpoint, representation)
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            return response
        try:
            saved = merchant.request_ids.claim(operation.call_type, request_id)
        except PayPalError as error:
            await add_latency(faults.latency_s)
            return error_response(error)
        if saved is not None:
            await add_latency(faults.latency_s)
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            # PayPal answers a repeated request id with 200 and the resource as it is now.
            return _render(Answer(200, saved.resource, saved.brief), call.urls, representation)
        # The id is held while the request works (latency included), as PayPal holds it:
        # a concurrent duplicate in that window gets 409.
        try:
            await add_latency(faults.latency_s)
            answer = self._answer(call, operation.endpoint)
        except BaseException:
            merchant.request_ids.release(operation.call_type, request_id)
            raise
        if isinstance(answer, Answer):
            merchant.request_ids.save(operation.call_type, request_id, answer)
            response = _render(answer, call.urls, representation)
            self._merchants.make_room(merchant)
        else:
            merchant.request_ids.release(operation.call_type, request_id)
            response = error_response(answer)
        await self._faults.hold(faults.hold_response_s, client_gone(request))
        return response

    def _execute(self, call: Call, endpoint: Endpoint, representation: bool) -> Response:
        answer = self._answer(call, endpoint)
        if isinstance(answer, PayPalError):
            return error_response(answer)
        response = _render(answer, call.urls, representation)
        self._merchants.make_room(call.merchant)  # after rendering: it may forget the oldest
        return response

    @staticmethod
    def _answer(call: Call, endpoint: Endpoint) -> Answer | PayPalError:
        try:
            return endpoint(call)
        except PayPalError as error:
            return error
        except Exception:
            log.exception("paypal sandbox failed on %s", endpoint.__qualname__)
            return PayPalError.internal_error()


def _render(answer: Answer, urls: Urls, representation: bool) -> Response:
    if representation or answer.brief is Brief.FULL:
        return json_response(answer.status, msgspec.json.encode(answer.resource.wire(urls)))
    if answer.brief is Brief.NO_CONTENT:
        return Response(status_code=204, headers={"Paypal-Debug-Id": debug_id()})
    minimal = getattr(answer.resource, "minimal", None)
    wire = minimal(urls) if minimal is not None else answer.resource.wire(urls)
    return json_response(answer.status, msgspec.json.encode(wire))


async def _json_body(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise PayPalError.invalid_request(
            "MALFORMED_REQUEST_JSON", "The request JSON is not well formed."
        ) from None
    if not isinstance(body, dict):
        raise PayPalError.invalid_request(
            "MALFORMED_REQUEST_JSON", "The request JSON is not well formed."
        )
    return body


def _rejection(rejection: Rejection) -> PayPalError:
    if rejection is Rejection.RATE_LIMITED:
        return PayPalError.rate_limited()
    return PayPalError.internal_error()
