"""API keys: shown once when created, stored only as a hash.

Keys are 256 random bits, so a plain SHA-256 is enough (no password stretching needed:
there is nothing to guess), and it is cheap on the hot path.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from paymesh.ports.store import ApiKey, Store
from paymesh.service.errors import BadRequest, Unauthorized

KEY_PREFIX = "pmk_"
_MERCHANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(store: Store, merchant_id: str, now: datetime) -> str:
    if not _MERCHANT.match(merchant_id):
        raise BadRequest("merchant must be 1-64 letters, digits, '.', '_' or '-'",
                         param="merchant")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    await store.add_api_key(ApiKey(key_hash=hash_key(secret), merchant_id=merchant_id,
                                   created_at=now, prefix=secret[:10]))
    return secret


class Authenticator:
    """Bearer key -> merchant id. Known keys are cached: they are never changed in place."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, str] = {}

    async def identify(self, authorization: str | None) -> tuple[str, str]:
        """(merchant id, key hash) for a bearer header; raises Unauthorized."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("missing API key: send 'Authorization: Bearer <secret key>'",
                               code="api_key_missing")
        digest = hash_key(authorization[7:].strip())
        merchant = self._cache.get(digest)
        if merchant is None:
            key = await self.store.find_api_key(digest)
            if key is None:
                raise Unauthorized("invalid API key")
            merchant = self._cache[digest] = key.merchant_id
        return merchant, digest
