"""The one HTTP transport every connector shares, over real loopback HTTP: any status is an
answer; a PSP that cannot be reached is `NotSent` (nothing done); one too slow is `NoAnswer`
(it may have acted); and calls on one transport keep their own timeouts side by side."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.transport import NoAnswer, NotSent
from tests.support.live_server import free_port, live_server


async def _echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "body": (await request.body()).decode(),
            "key": request.headers.get("idempotency-key"),
        },
        status_code=int(request.query_params.get("status", "200")),
        headers={"X-PSP-Request-Id": "req_1"},
    )


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params["s"]))
    return Response(b"late")


@pytest.fixture(scope="module")
def psp() -> Iterator[str]:
    app = Starlette(routes=[Route("/echo", _echo, methods=["GET", "POST"]), Route("/slow", _slow)])
    with live_server(app) as base:
        yield base


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport()
    yield t
    await t.aclose()


async def test_any_status_is_an_answer_with_its_headers_named_in_lower_case(
    psp: str, transport: AiohttpTransport
) -> None:
    for status in (200, 402, 503):
        answer = await transport.request(
            "POST", f"{psp}/echo?status={status}", {"Idempotency-Key": "k-1"}, b"amount=2000", 2.0
        )
        assert answer.status == status
        assert answer.headers["x-psp-request-id"] == "req_1"
        assert answer.body == b'{"method":"POST","body":"amount=2000","key":"k-1"}'


async def test_a_psp_that_cannot_be_reached_was_not_sent_anything(
    transport: AiohttpTransport,
) -> None:
    with pytest.raises(NotSent):
        await transport.request(
            "POST", f"http://127.0.0.1:{free_port()}/v1/payments", {}, b"{}", 2.0
        )


async def test_calls_on_one_transport_keep_their_own_timeouts(
    psp: str, transport: AiohttpTransport
) -> None:
    quick, patient = await asyncio.gather(
        transport.request("GET", f"{psp}/slow?s=0.6", {}, None, 0.2),
        transport.request("GET", f"{psp}/slow?s=0.6", {}, None, 5.0),
        return_exceptions=True,
    )
    assert isinstance(quick, NoAnswer)  # sent, and perhaps acted on: no answer in time
    assert not isinstance(patient, BaseException) and patient.body == b"late"


async def test_a_closed_transport_opens_again_on_next_use(
    psp: str, transport: AiohttpTransport
) -> None:
    await transport.aclose()
    assert (await transport.request("GET", f"{psp}/echo", {}, None, 2.0)).status == 200
