"""The request pipeline every `/v71` endpoint goes through.

    X-API-Key? -> injected 500/429? -> decode JSON -> claim Idempotency-Key -> latency
      -> execute -> save the answer (2xx) -> held answer (timeout fault)? -> respond
      -> send the notifications the change caused

Injected errors come before anything is decoded or claimed, so they change nothing and are
never replayed. Notifications leave after the answer, as Adyen's do; with the timeout fault
the work is done and its notifications are sent while the answer is held back, which is the
case a client must survive by asking again with the same key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import msgspec
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from paymesh.sandbox.adyen.calls import Answer, Call, Endpoint
from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.adyen.idempotency import MAX_KEY_LENGTH, request_fingerprint
from paymesh.sandbox.adyen.ledger import Ledger
from paymesh.sandbox.adyen.notifications import Item, Notifier
from paymesh.sandbox.faults import FaultInjector, Rejection, RequestFaults
from paymesh.sandbox.lifecycle import add_latency, client_gone

__all__ = ["AdyenApi", "error_response", "json_response", "sandbox_url"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
_Outcome = tuple[int, bytes, list[Item], dict[str, str]]


def sandbox_url(request: Request) -> str:
    """The sandbox's absolute base URL, including the prefix it is mounted under."""
    url = request.url
    return f"{url.scheme}://{url.netloc}{request.scope.get('root_path', '')}"


def json_response(
    status: int, body: bytes, headers: dict[str, str], background: BackgroundTask | None = None
) -> Response:
    return Response(
        body,
        status_code=status,
        headers=headers,
        media_type="application/json",
        background=background,
    )


def error_response(error: AdyenError, headers: dict[str, str] | None = None) -> Response:
    return json_response(error.status, error.body(), {**(headers or {}), **error.headers()})


class AdyenApi:
    def __init__(
        self,
        ledger: Ledger,
        faults: FaultInjector,
        notifier: Notifier,
        merchant_accounts: Callable[[], Collection[str]],
        manual_capture_default: Callable[[], bool],
    ) -> None:
        self._ledger = ledger
        self._faults = faults
        self._notifier = notifier
        self._merchant_accounts = merchant_accounts
        self._manual_capture_default = manual_capture_default

    def handler(self, endpoint: Endpoint) -> Handler:
        async def handle(request: Request) -> Response:
            return await self._handle(request, endpoint)

        return handle

    async def _handle(self, request: Request, endpoint: Endpoint) -> Response:
        faults = self._faults.draw()
        try:
            if not request.headers.get("x-api-key", "").strip():
                raise AdyenError.unauthorized()
            if faults.rejection is not None:
                raise _rejection_error(faults.rejection)
            body = await _body(request)
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            if key and len(key) > MAX_KEY_LENGTH:
                raise AdyenError.key_too_long()
        except AdyenError as error:
            await add_latency(faults.latency_s)
            return error_response(error)
        call = Call(
            body=body,
            path=request.path_params,
            ledger=self._ledger,
            merchant_accounts=self._merchant_accounts(),
            manual_capture_default=self._manual_capture_default(),
            sandbox_url=sandbox_url(request),
        )
        if not key:
            await add_latency(faults.latency_s)
            return await self._respond(request, self._execute(request, endpoint, call), faults)
        return await self._idempotent(request, endpoint, call, key, faults)

    async def _idempotent(
        self, request: Request, endpoint: Endpoint, call: Call, key: str, faults: RequestFaults
    ) -> Response:
        # Adyen echoes the key: that is how a client sees its request was handled idempotently.
        headers = {"Idempotency-Key": key}
        fingerprint = request_fingerprint(request.method, request.url.path, call.body)
        idempotency = self._ledger.idempotency
        try:
            saved = idempotency.claim(key, fingerprint)
        except AdyenError as error:
            await add_latency(faults.latency_s)
            return error_response(error, headers)
        if saved is not None:
            await add_latency(faults.latency_s)
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            assert saved.status is not None
            return json_response(saved.status, saved.body, headers)
        # The claim is held through the latency: a concurrent retry in that window gets 704.
        try:
            await add_latency(faults.latency_s)
            outcome = self._execute(request, endpoint, call)
        except BaseException:
            idempotency.release(key)
            raise
        status, body, _items, _headers = outcome
        if 200 <= status < 300:
            idempotency.save(key, status, body)
        else:  # nothing was done: the key stays free for a corrected request
            idempotency.release(key)
        return await self._respond(request, outcome, faults, headers)

    def _execute(self, request: Request, endpoint: Endpoint, call: Call) -> _Outcome:
        try:
            answer: Answer = endpoint(call)
        except AdyenError as error:
            return error.status, error.body(), [], error.headers()
        except Exception:
            log.exception("adyen sandbox failed on %s %s", request.method, request.url.path)
            crash = AdyenError.internal()
            return crash.status, crash.body(), [], {}
        return answer.status, msgspec.json.encode(answer.body), answer.notifications, {}

    async def _respond(
        self,
        request: Request,
        outcome: _Outcome,
        faults: RequestFaults,
        headers: dict[str, str] | None = None,
    ) -> Response:
        status, body, items, extra = outcome
        headers = {**(headers or {}), **extra}
        if faults.hold_response_s > 0:
            # Adyen did the work; only its answer is late. Its notifications are not.
            self._notifier.send(items)
            await self._faults.hold(faults.hold_response_s, client_gone(request))
            return json_response(status, body, headers)
        background = BackgroundTask(self._send, items) if items else None
        return json_response(status, body, headers, background)

    async def _send(self, items: list[Item]) -> None:
        # A coroutine, so Starlette runs it on the event loop (the sender's queue is not
        # thread-safe), after the answer has been sent.
        self._notifier.send(items)


async def _body(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return {}
    raw = await request.body()
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise AdyenError.unparsable(str(exc)) from None
    if not isinstance(body, dict):
        raise AdyenError.unparsable("the body must be a JSON object")
    return body


def _rejection_error(rejection: Rejection) -> AdyenError:
    if rejection is Rejection.RATE_LIMITED:
        return AdyenError.too_many_requests()
    return AdyenError.internal()
