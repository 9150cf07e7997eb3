"""The HTTP server's own limits and answers (issue 12, items 7 and 10): slow and huge headers,
bytes that are not HTTP, too many connections, an app that fails before answering. Real
uvicorn, configured by `build_config` as `paymesh serve` is, on a loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paymesh.config import Settings
from paymesh.entrypoints.http.asgi import build_app
from paymesh.entrypoints.http.intake import Intake
from paymesh.entrypoints.http.server import ServerLimits
from tests.integration.conftest import make_keys
from tests.support.live_server import free_port, live_server
from tests.support.raw_http import (
    closed_by_peer,
    connect,
    read_response,
    request_head,
    send_slowly,
)

TIMEOUT = 1.0
LIMITS = ServerLimits(header_timeout=TIMEOUT, limit_concurrency=8)


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True, "body": len(await request.body())})


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(float(request.query_params.get("s", "2")))
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    app = Starlette(routes=[Route("/ok", ok, methods=["GET", "POST"]), Route("/slow", slow)])
    with live_server(Intake(app, body_timeout=TIMEOUT), limits=LIMITS) as url:
        yield url


def error(
    status: int, code: str, message: str, kind: str = "invalid_request_error"
) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "code": code, "message": message}}


def answer(raw: bytes) -> tuple[int, object]:
    import msgspec

    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"\r\ncontent-type: application/json\r\n" in head, head
    return int(head.split()[1]), msgspec.json.decode(body)


# -- the header deadline ----------------------------------------------------------------------


def test_a_client_sending_its_headers_a_byte_at_a_time_is_cut_off_at_the_deadline(
    base: str,
) -> None:
    with connect(base) as sock:
        lasted, received = send_slowly(
            sock, request_head("GET", "/ok", {"X-Pad": "x" * 50}), every=0.25, until=6
        )
    assert TIMEOUT - 0.1 < lasted < TIMEOUT + 1.0, f"open for {lasted:.1f} s"
    assert answer(received) == error(
        408, "request_timeout", "the request headers did not arrive within 1 s"
    )


def test_a_connection_that_sends_nothing_is_closed_at_the_deadline(base: str) -> None:
    with connect(base) as sock:
        started = time.monotonic()
        assert closed_by_peer(sock, timeout=5)
        assert time.monotonic() - started < TIMEOUT + 1.0


def test_the_deadline_runs_again_after_each_response(base: str) -> None:
    """300 connections each sending a byte a second stayed open 65 s: keep-alive does not
    help, since any byte stops its timer. The deadline starts again at every response."""
    with connect(base) as sock:
        sock.sendall(request_head("GET", "/ok"))
        first = read_response(sock)
        assert first is not None and first.status == 200
        lasted, received = send_slowly(sock, request_head("GET", "/ok"), every=0.25, until=6)
    assert lasted < TIMEOUT + 1.0
    assert received.startswith(b"HTTP/1.1 408 ")


def test_a_prompt_keep_alive_client_is_unaffected(base: str) -> None:
    with connect(base) as sock:
        for _ in range(6):  # 6 x 0.4 s: longer in all than the deadline, never idle past it
            sock.sendall(request_head("GET", "/ok"))
            r = read_response(sock)
            assert r is not None and r.status == 200
            time.sleep(0.4)
        sock.sendall(request_head("GET", "/ok"))
        r = read_response(sock)
        assert r is not None and r.status == 200 and "connection" not in r.headers


def test_a_response_that_takes_longer_than_the_deadline_is_not_cut(base: str) -> None:
    with httpx.Client(base_url=base) as http:
        r = http.get("/slow", params={"s": TIMEOUT * 2})
        assert r.status_code == 200
        assert http.get("/ok").status_code == 200  # and the connection goes on


def test_a_body_dripped_a_byte_at_a_time_is_cut_off_at_its_deadline(base: str) -> None:
    """The same attack on the body: the app's intake gives a whole body a deadline."""
    with connect(base) as sock:
        sock.sendall(request_head("POST", "/ok", {"Content-Length": "100"}))
        lasted, received = send_slowly(sock, b"x" * 100, every=0.25, until=6)
    assert lasted < TIMEOUT + 1.0, f"open for {lasted:.1f} s"
    assert answer(received) == error(
        408, "request_timeout", "the request body did not arrive within 1 s"
    )


# -- header size ----------------------------------------------------------------------------


def test_headers_over_16_kib_are_431_in_the_error_shape(base: str) -> None:
    with connect(base) as sock:
        sock.sendall(request_head("GET", "/ok", {"X-Big": "x" * 17 * 1024}))
        r = read_response(sock)
        assert r is not None
        assert (r.status, r.headers["content-type"], r.headers["connection"]) == (
            431,
            "application/json",
            "close",
        )
        assert (
            r.json()
            == error(
                431,
                "request_headers_too_large",
                "the request line and headers are larger than 16384 bytes",
            )[1]
        )
        assert closed_by_peer(sock)


def test_many_headers_add_up(base: str) -> None:
    headers = {f"X-H{i}": "y" * 100 for i in range(200)}  # 200 small ones: 21 KiB
    with connect(base) as sock:
        sock.sendall(request_head("GET", "/ok", headers))
        r = read_response(sock)
        assert r is not None and r.status == 431


def test_an_endless_header_is_refused_without_being_held(base: str) -> None:
    """httptools keeps a header's bytes until it ends: one that never ends is cut off."""
    sent = 0
    with connect(base) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            while sent < 50 * 1024 * 1024:
                sock.sendall(b"x" * 65536)
                sent += 65536
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = read_response(sock)
    assert r is not None and r.status == 431
    assert sent < 20 * 1024 * 1024


def test_a_long_url_counts_too(base: str) -> None:
    with connect(base) as sock:
        sock.sendall(request_head("GET", "/ok?q=" + "a" * 20_000))
        r = read_response(sock)
        assert r is not None and r.status == 431


def test_headers_under_the_limit_pass(base: str) -> None:
    with httpx.Client(base_url=base) as http:
        r = http.get("/ok", headers={"X-Big": "x" * 15 * 1024})
    assert r.status_code == 200


# -- what is not HTTP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"GARBAGE\r\n\r\n", "Invalid method encountered"),
        (b"GET /ok HTTP/1.1\r\nHost: a\x01b\r\n\r\n", "Invalid header value char"),
        (b"GET /o k HTTP/1.1\r\n\r\n", "Expected HTTP/, RTSP/ or ICE/"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "Invalid method encountered"),  # TLS
        (
            b"POST /ok HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "Duplicate Content-Length",
        ),
    ],
)
def test_bytes_that_are_not_http_get_a_400_in_the_error_shape(
    base: str, raw: bytes, reason: str
) -> None:
    with connect(base) as sock:
        sock.sendall(raw)
        r = read_response(sock)
        assert r is not None
        assert (r.status, r.headers["content-type"], r.headers["connection"]) == (
            400,
            "application/json",
            "close",
        )
        assert r.json() == {
            "error": {
                "type": "invalid_request_error",
                "code": "http_request_invalid",
                "message": f"the request is not valid HTTP/1.1: {reason}",
            }
        }
        assert closed_by_peer(sock)


# -- too many connections ---------------------------------------------------------------------


def test_past_the_connection_limit_a_request_gets_a_503_in_the_error_shape(base: str) -> None:
    idle = [connect(base) for _ in range(LIMITS.limit_concurrency or 0)]
    try:
        with connect(base) as sock:
            sock.sendall(request_head("GET", "/ok"))
            r = read_response(sock)
        assert r is not None
        assert (r.status, r.headers["content-type"], r.headers["retry-after"]) == (
            503,
            "application/json",
            "1",
        )
        assert r.json() == {
            "error": {
                "type": "api_error",
                "code": "server_overloaded",
                "message": "the server is at its connection limit; retry after the Retry-After "
                "delay",
            }
        }
    finally:
        for s in idle:
            s.close()
    # And they are served again, once the server has seen the idle ones go.
    deadline = time.monotonic() + 10
    while (again := httpx.get(f"{base}/ok")).status_code != 200:
        assert time.monotonic() < deadline, again.text
        time.sleep(0.05)


# -- the paymesh app: failures come out in its error shape -------------------------------------


@pytest.fixture(scope="module")
def paymesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Starlette]]:
    port = free_port()
    settings = Settings.from_env(
        data_dir=Path(tmp_path_factory.mktemp("server")), port=port, rate_limit=0.0
    )
    (key,) = make_keys(settings, "shop")
    app = build_app(settings)
    with live_server(app, port) as url:
        yield url, key, app


@pytest.mark.parametrize("failure", [RuntimeError("boom"), asyncio.CancelledError()])
def test_an_app_failure_is_a_500_in_the_error_shape(
    paymesh: tuple[str, str, Starlette], monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    url, key, app = paymesh

    async def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(app.state.api.store, "list_payments", fail)
    r = httpx.get(f"{url}/v1/payments", headers={"Authorization": f"Bearer {key}"})
    assert (r.status_code, r.headers["content-type"]) == (500, "application/json")
    assert r.json() == {
        "error": {
            "type": "api_error",
            "code": "internal_error",
            "message": "an internal error occurred; it has been logged",
        }
    }


def test_the_paymesh_server_refuses_non_http_in_its_error_shape(
    paymesh: tuple[str, str, Starlette],
) -> None:
    url, _, _ = paymesh
    with connect(url) as sock:
        sock.sendall(b"\x00\x01\x02\r\n\r\n")
        r = read_response(sock)
    assert r is not None and r.status == 400
    assert cast(dict[str, Any], r.json())["error"]["code"] == "http_request_invalid"
