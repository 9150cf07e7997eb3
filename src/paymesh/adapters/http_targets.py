"""HTTP targets over aiohttp (the same client the connectors use)."""

from __future__ import annotations

import aiohttp

from paymesh.ports.targets import TargetUnreachable


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignored, the backoff decides


class AiohttpTargetSender:
    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self._timeout = timeout_seconds
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes,
                   headers: dict[str, str]) -> tuple[int, float | None]:
        if self._session is None:  # made inside the running loop, as aiohttp requires
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TargetUnreachable(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
