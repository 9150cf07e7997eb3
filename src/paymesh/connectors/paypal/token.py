"""The OAuth bearer token, fetched once and reused until shortly before it expires.

PayPal's tokens live for hours (`expires_in`, 32400 s); asking for one per call
would double every call and hit PayPal's token rate limit. A token is
refreshed a little early (a tenth of its life, at most a minute), by one
caller at a time: callers that find it stale while a refresh is running wait
for that refresh instead of starting their own. A 401 on a call means PayPal
dropped the token early; `refresh(stale)` replaces it unless another caller
already has.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["TokenCache"]

Fetch = Callable[[], Awaitable[tuple[str, float]]]  # -> (access token, expires_in seconds)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float


class TokenCache:
    def __init__(
        self, fetch: Fetch, clock: Callable[[], float] = time.monotonic, max_margin_s: float = 60.0
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._max_margin = max_margin_s
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        return await self.refresh(token.value if token else None)

    async def refresh(self, stale: str | None) -> str:
        """A new token, unless the current one is already newer than `stale`."""
        async with self._lock:
            token = self._token
            if token is not None and token.value != stale and self._clock() < token.refresh_at:
                return token.value
            value, expires_in = await self._fetch()
            margin = min(self._max_margin, expires_in / 10)
            self._token = _Token(value, self._clock() + expires_in - margin)
            return value

    def forget(self) -> None:
        self._token = None
