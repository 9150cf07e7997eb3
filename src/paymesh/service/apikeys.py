"""API keys: shown once when created, stored only as a hash, revocable.

Keys are 256 random bits, so a plain SHA-256 is enough (no password stretching needed:
there is nothing to guess), and it is cheap on the hot path.

A key is named to humans by its prefix (`pmk_` and the secret's next six characters): enough
to tell keys apart in `paymesh keys list` and to revoke one, useless to authenticate with.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from paymesh.ports.store import ApiKey, Store
from paymesh.service.errors import BadRequest, NotFound, Unauthorized

KEY_PREFIX = "pmk_"
PREFIX_LENGTH = len(KEY_PREFIX) + 6
#: How long a process trusts what it last read about a key. A key revoked anywhere (another
#: process, `paymesh keys revoke`) is refused by every process within this plus one read.
CACHE_SECONDS = 1.0
_MERCHANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(store: Store, merchant_id: str, now: datetime) -> str:
    if not _MERCHANT.match(merchant_id):
        raise BadRequest("merchant must be 1-64 letters, digits, '.', '_' or '-'", param="merchant")
    # A prefix no other key has, so that it names this key alone. 36 random bits: a clash
    # is rare, and only ever costs another draw.
    taken = {k.prefix for k in await store.list_api_keys()}
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    while secret[:PREFIX_LENGTH] in taken:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
    await store.add_api_key(
        ApiKey(
            key_hash=hash_key(secret),
            merchant_id=merchant_id,
            created_at=now,
            prefix=secret[:PREFIX_LENGTH],
        )
    )
    return secret


async def revoke_key(
    store: Store, name: str, now: datetime, merchant_id: str | None = None
) -> tuple[ApiKey, bool]:
    """Revoke the one key `name` names: its prefix as `paymesh keys list` shows it (or the
    whole secret). (the key, True) if this revoked it, (the key, False) if it already was.
    Raises NotFound when no key matches and BadRequest when several do: never a guess."""
    if len(name) > PREFIX_LENGTH and name.startswith(KEY_PREFIX):
        key = await store.find_api_key(hash_key(name))
        matches = [] if key is None or merchant_id not in (None, key.merchant_id) else [key]
    else:
        matches = [k for k in await store.list_api_keys(merchant_id) if k.prefix == name]
    if not matches:
        whose = f" of merchant {merchant_id!r}" if merchant_id else ""
        raise NotFound(f"no API key {name[:PREFIX_LENGTH]}{whose}", param="key")
    if len(matches) > 1:
        merchants = ", ".join(sorted({k.merchant_id for k in matches}))
        raise BadRequest(
            f"{name} names {len(matches)} keys (merchants {merchants}): revoke "
            "with --merchant, or with the whole secret key",
            param="key",
        )
    key = matches[0]
    if await store.revoke_api_key(key.key_hash, now):
        return ApiKey(key.key_hash, key.merchant_id, key.created_at, key.prefix, now), True
    return (await store.find_api_key(key.key_hash)) or key, False


class Authenticator:
    """Bearer key -> merchant id. A known key is trusted for `ttl` seconds after it was read,
    then read again, so a revocation anywhere reaches this process within `ttl`: one
    primary-key read per key per `ttl`, however many requests it serves."""

    def __init__(
        self, store: Store, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}  # key hash -> (merchant, fresh until)

    async def identify(self, authorization: str | None) -> tuple[str, str]:
        """(merchant id, key hash) for a bearer header; raises Unauthorized."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <secret key>'", code="api_key_missing"
            )
        digest = hash_key(authorization[7:].strip())
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and now < cached[1]:
            return cached[0], digest
        key = await self.store.find_api_key(digest)
        if key is None or key.revoked_at is not None:
            self._cache.pop(digest, None)
            raise Unauthorized("invalid API key")
        self._cache[digest] = (key.merchant_id, now + self.ttl)
        return key.merchant_id, digest
