"""The request pipeline every `/v1` endpoint goes through.

    authenticate -> injected 500/429? -> decode + validate -> claim Idempotency-Key
      -> latency -> execute -> save the answer -> held answer (timeout fault)? -> respond

Injected errors come before anything is decoded or claimed, so they change
nothing and are never replayed. The timeout fault comes last: the work is done
and saved, only the answer is late, which is the case a client must survive
by retrying with the same key. Every response carries a `Request-Id`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paymesh.sandbox.faults import FaultInjector, Rejection, RequestFaults
from paymesh.sandbox.forms import FormError, parse_form
from paymesh.sandbox.lifecycle import add_latency, client_gone
from paymesh.sandbox.stripe.accounts import Account, Accounts
from paymesh.sandbox.stripe.calls import Call, Endpoint, Execute
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.events import EventPublisher
from paymesh.sandbox.stripe.idempotency import request_fingerprint
from paymesh.sandbox.stripe.ids import new_id
from paymesh.sandbox.stripe.objects import API_VERSION, EventRequest
from paymesh.sandbox.stripe.params import Params

__all__ = ["RequestIds", "StripeApi", "json_response", "sandbox_url"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


_REQUEST_ID = "paymesh.stripe.request_id"


class RequestIds:
    """Stamps every response, API or not, with Stripe's `Request-Id` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req", 14)
        scope[_REQUEST_ID] = request_id
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def request_id(request: Request) -> str:
    found = request.scope.get(_REQUEST_ID)
    return found if isinstance(found, str) else new_id("req", 14)


def sandbox_url(request: Request) -> str:
    """The sandbox's absolute base URL, including the prefix it is mounted under."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"


def json_response(status: int, body: bytes, headers: dict[str, str]) -> Response:
    return Response(body, status_code=status, headers=headers, media_type="application/json")


class StripeApi:
    def __init__(self, accounts: Accounts, faults: FaultInjector, events: EventPublisher) -> None:
        self._accounts = accounts
        self._faults = faults
        self._events = events

    def handler(self, endpoint: Endpoint) -> Handler:
        async def handle(request: Request) -> Response:
            return await self._handle(request, endpoint)

        return handle

    async def _handle(self, request: Request, endpoint: Endpoint) -> Response:
        faults = self._faults.draw()
        headers = {"Stripe-Version": API_VERSION}
        try:
            account = self._accounts.authenticate(request.headers.get("authorization"))
            if faults.rejection is not None:
                raise _rejection_error(faults.rejection)
            params = await _params(request)
            execute = endpoint(params)
        except StripeError as error:
            await add_latency(faults.latency_s)
            return json_response(error.status, error.body(), headers)

        key = request.headers.get("idempotency-key") if request.method == "POST" else None
        if key is None:
            await add_latency(faults.latency_s)
            status, body = self._execute(request, account, execute, None)
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            return json_response(status, body, headers)
        return await self._idempotent(request, account, params, execute, key, faults, headers)

    async def _idempotent(
        self,
        request: Request,
        account: Account,
        params: Params,
        execute: Execute,
        key: str,
        faults: RequestFaults,
        headers: dict[str, str],
    ) -> Response:
        headers["Idempotency-Key"] = key
        fingerprint = request_fingerprint(request.method, request.url.path, params.values)
        try:
            saved = account.idempotency.claim(key, fingerprint)
        except StripeError as error:
            await add_latency(faults.latency_s)
            return json_response(error.status, error.body(), headers)
        if saved is not None:
            await add_latency(faults.latency_s)
            headers["Idempotent-Replayed"] = "true"
            headers["Original-Request"] = saved.request_id
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            assert saved.status is not None
            return json_response(saved.status, saved.body, headers)
        # The claim is held through the latency, as Stripe holds it while it
        # works: a concurrent retry in that window gets 409.
        try:
            await add_latency(faults.latency_s)
            status, body = self._execute(request, account, execute, key)
        except BaseException:
            account.idempotency.release(key)
            raise
        if status >= 500:  # a crash in the sandbox itself is not an answer to replay
            account.idempotency.release(key)
        else:
            account.idempotency.save(key, status, body, request_id(request))
        await self._faults.hold(faults.hold_response_s, client_gone(request))
        return json_response(status, body, headers)

    def _execute(
        self,
        request: Request,
        account: Account,
        execute: Execute,
        key: str | None,
    ) -> tuple[int, bytes]:
        call = Call(
            account=account,
            accounts=self._accounts,
            events=self._events,
            request=EventRequest(request_id(request), key),
            sandbox_url=sandbox_url(request),
        )
        try:
            return 200, msgspec.json.encode(execute(call))
        except StripeError as error:
            return error.status, error.body()
        except Exception:
            log.exception("stripe sandbox failed on %s %s", request.method, request.url.path)
            return 500, StripeError.api_error().body()


async def _params(request: Request) -> Params:
    try:
        if request.method == "POST":
            values = parse_form(await request.body())
        else:
            values = parse_form(request.url.query)
    except FormError as error:
        raise StripeError.invalid_request(str(error), param=error.param) from None
    return Params(values, request.path_params)


def _rejection_error(rejection: Rejection) -> StripeError:
    if rejection is Rejection.RATE_LIMITED:
        return StripeError.rate_limited()
    return StripeError.api_error()
