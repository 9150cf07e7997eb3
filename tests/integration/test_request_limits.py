"""Request bodies are bounded while they are read, and /v1 takes JSON only (issue 12, items 7
and 10). Real server in this process, real sockets: its memory is this process's memory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paymesh.entrypoints.http.intake import API_BODY_LIMIT, WEBHOOK_BODY_LIMIT
from tests.integration.conftest import Server, start
from tests.support.raw_http import closed_by_peer, connect, read_response, request_head

GOOD = {
    "amount": 2000,
    "currency": "usd",
    "customer_id": "cus_limits",
    "payment_method": "pm_card_visa",
}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("limits"))


def too_large(limit: int) -> dict[str, Any]:
    return {
        "error": {
            "type": "invalid_request_error",
            "code": "request_too_large",
            "message": f"the request body is larger than this route's limit of {limit // 1024} KiB",
        }
    }


def payments(server: Server) -> int:
    with server.client() as http:
        return len(http.get("/v1/payments", params={"limit": 100}).json()["data"])


# -- Content-Length over the limit: refused before a byte of the body -----------------------


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/payments", API_BODY_LIMIT),
        ("/webhooks/stripe", WEBHOOK_BODY_LIMIT),
        ("/webhooks/adyen", WEBHOOK_BODY_LIMIT),
    ],
)
def test_a_content_length_over_the_limit_is_413_at_once_and_the_connection_closed(
    shared: Server, path: str, limit: int
) -> None:
    with connect(shared.base) as sock:
        started = time.monotonic()
        sock.sendall(
            request_head(
                "POST",
                path,
                {
                    "Authorization": f"Bearer {shared.key}",
                    "Content-Type": "application/json",
                    "Content-Length": str(300 * MiB),
                },
            )
        )  # and not one byte of it
        r = read_response(sock, timeout=5)
        assert r is not None, "no answer before the body"
        assert time.monotonic() - started < 2
        assert (r.status, r.headers["content-type"], r.headers.get("connection")) == (
            413,
            "application/json",
            "close",
        )
        assert r.json() == too_large(limit)
        assert closed_by_peer(sock, timeout=5)


def test_bodies_up_to_the_limit_are_read_and_one_byte_more_is_not(shared: Server) -> None:
    before = payments(shared)
    padding = b" " * (API_BODY_LIMIT - 2)  # JSON allows white space: `{` + padding + `}`
    with shared.client() as http:
        at_limit = http.post(
            "/v1/payments",
            content=b"{" + padding + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert at_limit.status_code == 400  # read, decoded: the fields are missing
        assert at_limit.json()["error"]["code"] == "parameter_missing"
        over = http.post(
            "/v1/payments",
            content=b"{" + padding + b" }",
            headers={"Content-Type": "application/json"},
        )
        assert over.status_code == 413
        assert over.json() == too_large(API_BODY_LIMIT)
    assert payments(shared) == before


def test_a_webhook_may_be_larger_than_an_api_body_up_to_its_own_limit(shared: Server) -> None:
    body = b'{"id": "evt_big", "pad": "' + b"x" * (WEBHOOK_BODY_LIMIT - 64) + b'"}'
    r = httpx.post(
        f"{shared.base}/webhooks/stripe",
        content=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=0"},
    )
    assert r.status_code == 400  # read whole and refused for its signature, not its size
    assert r.json()["error"]["code"] == "webhook_signature_invalid"


# -- chunked: cut off as soon as it passes the limit, never buffered ------------------------


class PeakRss:
    """This process's resident memory, sampled every few ms while a test runs."""

    def __init__(self) -> None:
        self.baseline = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def send_chunked(base: str, path: str, headers: dict[str, str], total: int) -> tuple[int, bytes]:
    """POST `total` bytes as 64 KiB chunks as fast as the server takes them; returns how many
    were sent before it stopped taking them, and what it answered."""
    chunk = 64 * 1024
    frame = b"%x\r\n" % chunk + b"{" * chunk + b"\r\n"
    sent = 0
    with connect(base, timeout=10) as sock:
        sock.sendall(request_head("POST", path, {**headers, "Transfer-Encoding": "chunked"}))
        try:
            while sent < total:
                sock.sendall(frame)
                sent += chunk
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        r = read_response(sock, timeout=10)
        answer = r.raw + r.body if r else b""
    return sent, answer


@pytest.mark.parametrize(
    ("path", "limit"), [("/webhooks/stripe", WEBHOOK_BODY_LIMIT), ("/v1/payments", API_BODY_LIMIT)]
)
def test_a_chunked_body_is_cut_off_past_the_limit_and_never_held_in_memory(
    shared: Server, path: str, limit: int
) -> None:
    before = payments(shared)
    headers = {"Authorization": f"Bearer {shared.key}", "Content-Type": "application/json"}
    send_chunked(shared.base, path, headers, 2 * MiB)  # warm up: first-use allocations
    with PeakRss() as rss:
        sent, answer = send_chunked(shared.base, path, headers, 50 * MiB)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code":"request_too_large"' in answer
    # The server stopped reading near the limit; what else went out sat in socket buffers.
    assert sent < 20 * MiB, f"the server read {sent / MiB:.0f} MiB of a body over the limit"
    assert rss.growth < 8 * MiB, f"memory grew by {rss.growth / MiB:.1f} MiB"
    assert payments(shared) == before


def test_many_concurrent_oversized_bodies_do_not_add_up(shared: Server) -> None:
    """The attack: many connections each streaming a huge webhook. Each is cut at 1 MiB."""
    headers = {"Content-Type": "application/json"}
    with PeakRss() as rss:
        threads = [
            threading.Thread(
                target=send_chunked, args=(shared.base, "/webhooks/stripe", headers, 20 * MiB)
            )
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert rss.growth < 8 * (WEBHOOK_BODY_LIMIT + MiB), f"memory grew by {rss.growth / MiB:.1f} MiB"


# -- content types ----------------------------------------------------------------------------

UNSUPPORTED = {
    "error": {
        "type": "invalid_request_error",
        "code": "unsupported_media_type",
        "message": "a request body must be JSON: send Content-Type: application/json",
    }
}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json-patch+json",
        "application/json; charset=latin-1",
        None,
    ],
)
def test_a_v1_body_that_is_not_json_is_415_and_changes_nothing(
    shared: Server, content_type: str | None
) -> None:
    before = payments(shared)
    headers = {"Authorization": f"Bearer {shared.key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    r = httpx.post(
        f"{shared.base}/v1/payments",
        headers=headers,
        content=b'{"amount": 2000, "currency": "usd", "customer_id": "c", '
        b'"payment_method": "pm_card_visa"}',
    )
    assert r.status_code == 415
    assert r.headers["content-type"] == "application/json"
    assert r.json() == UNSUPPORTED
    assert payments(shared) == before


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_json_is_accepted_with_or_without_a_utf8_charset(shared: Server, content_type: str) -> None:
    import msgspec

    with shared.client() as http:
        r = http.post(
            "/v1/payments",
            content=msgspec.json.encode(GOOD),
            headers={"Content-Type": content_type},
        )
    assert r.status_code == 201, r.text


def test_a_post_without_a_body_needs_no_content_type(shared: Server) -> None:
    with shared.client() as http:
        pid = http.post("/v1/payments", json={**GOOD, "capture_method": "manual"}).json()["id"]
        r = http.post(f"/v1/payments/{pid}/cancel")  # no body, no Content-Type
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "canceled"


def test_webhooks_take_what_the_psp_sends_whatever_its_content_type(shared: Server) -> None:
    for content_type in (None, "text/plain", "application/json; charset=utf-8"):
        headers = {"Content-Type": content_type} if content_type else {}
        r = httpx.post(f"{shared.base}/webhooks/stripe", content=b"{}", headers=headers)
        assert r.status_code == 400  # its signature is what is checked
        assert r.json()["error"]["code"] == "webhook_signature_invalid"


def test_an_answer_before_the_body_is_read_closes_the_connection(shared: Server) -> None:
    """415 before reading the body: the server hangs up rather than read the rest to find
    where the next request starts (a chunked body could go on for ever)."""
    with connect(shared.base) as sock:
        body = b"x" * 1000
        sock.sendall(
            request_head(
                "POST",
                "/v1/payments",
                {
                    "Authorization": f"Bearer {shared.key}",
                    "Content-Type": "text/plain",
                    "Content-Length": str(len(body)),
                },
            )
            + body
        )
        r = read_response(sock)
        assert r is not None and r.status == 415
        assert r.headers.get("connection") == "close"
        assert closed_by_peer(sock, timeout=5)


def test_a_keep_alive_connection_serves_request_after_request(shared: Server) -> None:
    with connect(shared.base) as sock:
        for _ in range(5):
            sock.sendall(
                request_head(
                    "GET", "/v1/payments?limit=1", {"Authorization": f"Bearer {shared.key}"}
                )
            )
            r = read_response(sock)
            assert r is not None and r.status == 200
            assert r.headers.get("connection") != "close"
