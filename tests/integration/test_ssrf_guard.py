"""HTTP targets cannot reach what is behind paymesh (issue 12, item 5).

The sender under test is the real one, over real sockets to real loopback servers. Names are
answered by a fake resolver (no real DNS); every way this process opens a TCP connection is
watched: loopback passes (the tests' own servers), anything else fails before it leaves and is
recorded, so a guard that let 169.254.169.254 through would show here, without sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.ports.bus import Delivery, RetryPolicy, Rule, Target
from paymesh.ports.targets import TargetRefused, TargetUnreachable
from paymesh.service.bus import SigningSecrets, Targets
from paymesh.service.event_router import Router
from tests.support.live_server import free_port, live_server

METADATA = "http://metadata.paymesh-test.invalid/latest/meta-data/iam/security-credentials/"


class FakeDns(AbstractResolver):
    """Answers from a table; the answers for a name may change from one lookup to the next
    (`answers[name]` is a list of answers, the last repeated)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        series = self.answers[host]
        addresses = series.pop(0) if len(series) > 1 else series[0]
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        pass


@dataclass
class SocketWatch:
    tried: list[str] = field(default_factory=list)  # every address a connection was tried to

    def check(self, address: Any) -> None:
        host = str(address[0] if isinstance(address, tuple) else address)
        self.tried.append(host)
        try:
            loopback = ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"a connection to {host} was attempted")

    @property
    def outside(self) -> list[str]:
        return [h for h in self.tried if not h.startswith(("127.", "::1"))]


@pytest.fixture
async def sockets(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SocketWatch]:
    watch = SocketWatch()
    loop = asyncio.get_running_loop()
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    sock_connect, create_connection = loop.sock_connect, loop.create_connection

    def patched_connect(self: socket.socket, address: Any) -> None:
        watch.check(address)
        connect(self, address)

    def patched_connect_ex(self: socket.socket, address: Any) -> int:
        watch.check(address)
        return connect_ex(self, address)

    async def patched_sock_connect(sock: socket.socket, address: Any) -> None:
        watch.check(address)
        await sock_connect(sock, address)

    async def patched_create_connection(*args: Any, **kwargs: Any) -> Any:
        host = kwargs.get("host", args[1] if len(args) > 1 else None)
        if host is not None:
            watch.check((host, kwargs.get("port")))
        return await create_connection(*args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", patched_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", patched_connect_ex)
    monkeypatch.setattr(loop, "sock_connect", patched_sock_connect)
    monkeypatch.setattr(loop, "create_connection", patched_create_connection)
    yield watch


@dataclass
class Endpoint:
    """A merchant's endpoint on loopback: records each request (Host header, body)."""

    status: int = 200
    redirect_to: str | None = None
    got: list[tuple[str, bytes]] = field(default_factory=list)

    async def hook(self, request: Request) -> Response:
        self.got.append((request.headers.get("host", ""), await request.body()))
        if self.redirect_to:
            return RedirectResponse(self.redirect_to, status_code=self.status)
        return Response(b"ok", status_code=self.status)


@contextlib.contextmanager
def endpoint(**kwargs: Any) -> Iterator[tuple[Endpoint, int]]:
    e = Endpoint(**kwargs)
    port = free_port()
    with live_server(Starlette(routes=[Route("/hook", e.hook, methods=["POST"])]), port):
        yield e, port


@contextlib.contextmanager
def black_hole() -> Iterator[int]:
    """A port that takes the connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()


async def post(sender: AiohttpTargetSender, url: str) -> tuple[int, float | None]:
    try:
        return await sender.post(url, b'{"id": "evt_1"}', {"Content-Type": "application/json"})
    finally:
        await sender.aclose()


async def refusal(sender: AiohttpTargetSender, url: str) -> str:
    """Why the sender refused the url (the test fails if it did not)."""
    with pytest.raises(TargetRefused) as refused:
        await post(sender, url)
    return str(refused.value)


# -- the metadata service, and everything else that is not public ---------------------------


async def test_a_name_resolving_to_the_metadata_service_is_refused_before_any_socket(
    sockets: SocketWatch,
) -> None:
    dns = FakeDns({"metadata.paymesh-test.invalid": [["169.254.169.254"]]})
    sender = AiohttpTargetSender(resolver=dns)
    assert await refusal(sender, METADATA) == "target address not allowed"
    assert dns.asked == ["metadata.paymesh-test.invalid"]  # refused after resolving...
    assert sockets.tried == []  # ...and before any connection


async def test_the_socket_watch_sees_a_connection_the_guard_lets_through(
    sockets: SocketWatch,
) -> None:
    """The control for the test above: the same name, let through by an allow-list entry,
    is connected to (and stopped by the watch), so an empty watch means no connection."""
    dns = FakeDns({"metadata.paymesh-test.invalid": [["169.254.169.254"]]})
    sender = AiohttpTargetSender(resolver=dns, allow=["169.254.169.254"])
    with pytest.raises(TargetUnreachable):
        await post(sender, METADATA)
    assert "169.254.169.254" in sockets.tried


NON_PUBLIC = [
    "127.0.0.1",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.100.100.200",
    "0.0.0.0",
    "224.0.0.251",
    "::1",
    "fd00::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
]


def literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize("address", NON_PUBLIC)
async def test_a_non_public_address_in_the_url_is_refused_unresolved_and_unconnected(
    sockets: SocketWatch, address: str
) -> None:
    dns = FakeDns({})
    url = f"http://{literal(address)}:8080/hook"
    assert await refusal(AiohttpTargetSender(resolver=dns), url) == "target address not allowed"
    assert (dns.asked, sockets.tried) == ([], [])


@pytest.mark.parametrize("address", NON_PUBLIC)
async def test_a_name_resolving_to_a_non_public_address_is_refused(
    sockets: SocketWatch, address: str
) -> None:
    dns = FakeDns({"hooks.shop.test": [[address]]})
    assert (
        await refusal(AiohttpTargetSender(resolver=dns), "https://hooks.shop.test/hook")
        == "target address not allowed"
    )
    assert sockets.tried == []


async def test_one_internal_address_among_public_ones_refuses_the_name(
    sockets: SocketWatch,
) -> None:
    dns = FakeDns({"hooks.shop.test": [["203.0.113.0", "8.8.8.8", "10.0.0.1"]]})
    assert (
        await refusal(AiohttpTargetSender(resolver=dns), "https://hooks.shop.test/hook")
        == "target address not allowed"
    )
    assert sockets.tried == []


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433:8080/hook",
        "http://user:pw@8.8.8.8/",
        "ftp://hooks.shop.test/hook",
        "http:///hook",
    ],
)
async def test_malformed_or_legacy_urls_are_refused(sockets: SocketWatch, url: str) -> None:
    assert await refusal(AiohttpTargetSender(resolver=FakeDns({})), url) == "target url not allowed"
    assert sockets.tried == []


# -- what is allowed, and how --------------------------------------------------------------


async def test_an_allow_listed_loopback_target_is_delivered(sockets: SocketWatch) -> None:
    with endpoint() as (hook, port):
        status, _ = await post(
            AiohttpTargetSender(allow=["127.0.0.1"]), f"http://127.0.0.1:{port}/hook"
        )
    assert status == 200
    assert hook.got == [(f"127.0.0.1:{port}", b'{"id": "evt_1"}')]
    assert sockets.outside == []


async def test_loopback_is_refused_without_the_allow_list(sockets: SocketWatch) -> None:
    with endpoint() as (hook, port):
        assert (
            await refusal(AiohttpTargetSender(), f"http://127.0.0.1:{port}/hook")
            == "target address not allowed"
        )
    assert hook.got == []


async def test_the_checked_address_is_connected_to_with_the_names_host_header(
    sockets: SocketWatch,
) -> None:
    """DNS rebinding: the name answers loopback (allowed here), then the metadata service.
    The connection goes where the check was made, and the request still names the host."""
    dns = FakeDns({"hooks.shop.test": [["127.0.0.1"], ["169.254.169.254"]]})
    with endpoint() as (hook, port):
        status, _ = await post(
            AiohttpTargetSender(resolver=dns, allow=["127.0.0.1"]),
            f"http://hooks.shop.test:{port}/hook",
        )
    assert status == 200
    assert hook.got == [(f"hooks.shop.test:{port}", b'{"id": "evt_1"}')]
    assert dns.asked == ["hooks.shop.test"]  # one lookup, the checked one
    assert sockets.outside == []


async def test_a_redirect_is_not_followed(sockets: SocketWatch) -> None:
    with (
        endpoint() as (second, second_port),
        endpoint(status=307, redirect_to=f"http://127.0.0.1:{second_port}/hook") as (first, port),
    ):
        status, _ = await post(
            AiohttpTargetSender(allow=["127.0.0.1"]), f"http://127.0.0.1:{port}/hook"
        )
    assert status == 307
    assert len(first.got) == 1
    assert second.got == []


async def test_live_mode_requires_https(sockets: SocketWatch) -> None:
    live = AiohttpTargetSender(require_https=True, allow=["127.0.0.1"])
    with endpoint() as (hook, port):
        assert await refusal(live, f"http://127.0.0.1:{port}/hook") == "target url not allowed"
    assert hook.got == []


# -- what a merchant reads in its dead letters ---------------------------------------------

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def attempt_once(targets: Targets, url: str) -> str:
    """One attempt through the bus's own target runner; the error it records (the one the
    dead-letter API shows)."""
    policy = RetryPolicy(maximum_retry_attempts=0)
    delivery = Delivery(
        id="dlv_1",
        event_id="evt_1",
        merchant_id="m1",
        rule="hooks",
        target=Target(id="hook", type="http", url=url, retry_policy=policy),
        event_time=datetime.now(UTC),
        created_at=T0,
        next_attempt_at=T0,
    )
    await targets.attempt(delivery, {"id": "evt_1"}, lambda: datetime.now(UTC), lambda: 0.5, 0.01)
    assert delivery.status == "dead"
    return delivery.history[-1].error


async def test_dead_letter_reasons_do_not_map_the_network(sockets: SocketWatch) -> None:
    router = Router([])
    router.put(Rule("m1", "hooks", {"source": ["paymesh"]}, (), signing_secret="whsec_test"))
    dns = FakeDns({"hooks.shop.test": [["10.0.0.9"]]})
    sender = AiohttpTargetSender(0.5, resolver=dns, allow=["127.0.0.1"])
    targets = Targets({}, sender, secrets=SigningSecrets(router, None))
    closed = free_port()  # nothing listens there: connection refused
    try:
        with (
            black_hole() as silent,
            endpoint(status=503) as (_, down),
            endpoint(status=302, redirect_to="http://127.0.0.1:9/") as (_, moved),
        ):
            errors = {
                "refused": await attempt_once(targets, f"http://127.0.0.1:{closed}/hook"),
                "timed out": await attempt_once(targets, f"http://127.0.0.1:{silent}/hook"),
                "no such host": await attempt_once(targets, "https://nowhere.shop.test/hook"),
                "internal name": await attempt_once(targets, "https://hooks.shop.test/hook"),
                "internal address": await attempt_once(targets, "http://192.168.0.10/hook"),
                "503": await attempt_once(targets, f"http://127.0.0.1:{down}/hook"),
                "redirect": await attempt_once(targets, f"http://127.0.0.1:{moved}/hook"),
            }
    finally:
        await sender.aclose()
    assert errors == {
        "refused": "target unreachable",
        "timed out": "target unreachable",
        "no such host": "target unreachable",
        "internal name": "target address not allowed",
        "internal address": "target address not allowed",
        "503": "HTTP 503",
        "redirect": "redirect not followed",
    }
    assert sockets.outside == []
