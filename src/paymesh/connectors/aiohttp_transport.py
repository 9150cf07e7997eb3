"""The HTTP transport over aiohttp: one session, one connection pool, for every PSP.

Each call carries its own timeout (its PSP's), so PSPs with different timeouts share the
pool. The pool is sized as each connector's own was (200 connections to one PSP), for every
PSP at once. No cookies are kept: PSP APIs authenticate every call, and nothing one PSP sets
should ride along to another.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from paymesh.connectors.transport import HttpAnswer, NoAnswer, NotSent

__all__ = ["AiohttpTransport"]

#: Seconds to open a connection, within the call's whole timeout: a PSP that does not accept
#: a connection this quickly is treated as unreachable (nothing was sent).
CONNECT_TIMEOUT = 2.0


class AiohttpTransport:
    def __init__(self, limit: int = 600, limit_per_host: int = 200) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop, as aiohttp requires.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._limit, limit_per_host=self._limit_per_host
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout_seconds: float,
    ) -> HttpAnswer:
        limits = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=CONNECT_TIMEOUT)
        try:
            async with self._client().request(
                method, url, headers=dict(headers), data=body, timeout=limits
            ) as response:
                raw = await response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
                return HttpAnswer(response.status, answer_headers, raw)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise NotSent(type(exc).__name__) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NoAnswer(type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
