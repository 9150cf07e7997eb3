"""HTTP clients of the generator: send one prepared request, return status, body and whether
the server said it replayed a stored answer. Redirects are never followed (the 3-D Secure
page redirects to the merchant's return URL, which is not the customer's business here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

REPLAYED = "Idempotent-Replayed"


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request, built before its phase so the scheduler only sends. A `path` that starts
    with `http` is an absolute URL (the sandbox's 3-D Secure page)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    replayed: bool


class LoadClient(Protocol):
    """Raises on any transport failure; every HTTP status is an answer."""

    async def send(self, spec: RequestSpec) -> Answer: ...

    async def aclose(self) -> None: ...


class AiohttpClient:
    """aiohttp's client: keep-alive pool, C-accelerated parser, about a fifth of httpx's CPU
    per request here (httpx's pool polls every connection on each request), so the
    generator leaves the server most of the 2 cores."""

    def __init__(self, base_url: str, connections: int, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._connections = connections
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop, as aiohttp requires
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def send(self, spec: RequestSpec) -> Answer:
        url = spec.path if spec.path.startswith("http") else self._base + spec.path
        async with self._client().request(
            spec.method, url, headers=spec.headers, data=spec.body, allow_redirects=False
        ) as response:
            body = await response.read()
            return Answer(response.status, body, response.headers.get(REPLAYED) == "true")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class HttpxClient:
    """httpx's AsyncClient, kept to cross-check the aiohttp client."""

    def __init__(self, base_url: str, connections: int, timeout: float) -> None:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            keepalive_expiry=60.0,
        )
        # The pool timeout matters: when every connection is busy, a request waits
        # in the client, and that wait is (rightly) part of its latency.
        self._client = httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=httpx.Timeout(timeout)
        )

    async def send(self, spec: RequestSpec) -> Answer:
        response = await self._client.request(
            spec.method, spec.path, headers=spec.headers, content=spec.body
        )
        replayed = response.headers.get(REPLAYED) == "true"
        return Answer(response.status_code, response.content, replayed)

    async def aclose(self) -> None:
        await self._client.aclose()


CLIENTS: dict[str, Callable[[str, int, float], LoadClient]] = {
    "aiohttp": AiohttpClient,
    "httpx": HttpxClient,
}


def client_label(name: str) -> str:
    if name == "httpx":
        return f"httpx {httpx.__version__}"
    return f"aiohttp {aiohttp.__version__}"
