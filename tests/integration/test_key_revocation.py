"""A revoked API key is refused by every process within 2 seconds; the others keep working."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paymesh.adapters.sqlite import SqliteStore
from paymesh.service.apikeys import Authenticator, create_key, hash_key, revoke_key
from paymesh.service.errors import BadRequest, NotFound, Unauthorized

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def refused_after(auth: Authenticator, secret: str, within: float) -> float:
    """Seconds until `auth` refuses `secret` as an invalid key; fails after `within`."""
    start = time.monotonic()
    while time.monotonic() - start < within + 1:
        try:
            await auth.identify(f"Bearer {secret}")
        except Unauthorized as exc:
            assert exc.message == "invalid API key"
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    pytest.fail(f"the revoked key still authenticates after {within + 1} s")


@pytest.fixture
def store(sqlite_store: SqliteStore) -> SqliteStore:
    return sqlite_store


async def test_a_cached_key_is_read_again_after_the_ttl_and_refused_once_revoked(
    store: SqliteStore,
) -> None:
    clock = [100.0]
    auth = Authenticator(store, ttl=1.0, clock=lambda: clock[0])
    secret = await create_key(store, "shop", NOW)
    assert await auth.identify(f"Bearer {secret}") == ("shop", hash_key(secret))
    await revoke_key(store, secret[:10], NOW)
    clock[0] += 0.9  # still within the ttl: the cached answer stands
    assert (await auth.identify(f"Bearer {secret}"))[0] == "shop"
    clock[0] += 0.2
    with pytest.raises(Unauthorized, match="invalid API key"):
        await auth.identify(f"Bearer {secret}")
    clock[0] += 10  # and for good: a revoked key is never cached as valid again
    with pytest.raises(Unauthorized, match="invalid API key"):
        await auth.identify(f"Bearer {secret}")


async def test_two_processes_on_one_file_both_refuse_a_revoked_key_within_2_s(
    tmp_path: Path,
) -> None:
    # Two store handles on one file, as `paymesh serve` and `paymesh keys revoke` have.
    server, cli = SqliteStore(tmp_path / "p.db"), SqliteStore(tmp_path / "p.db")
    await server.open()
    await cli.open()
    try:
        kept, revoked = (await create_key(cli, "shop", NOW), await create_key(cli, "shop", NOW))
        auth = Authenticator(server)
        for secret in (kept, revoked):  # both cached by the server
            assert (await auth.identify(f"Bearer {secret}"))[0] == "shop"
        key, now = await revoke_key(cli, revoked[:10], datetime.now(UTC))
        assert now and key.prefix == revoked[:10] and key.revoked_at is not None
        assert await refused_after(auth, revoked, within=2.0) <= 2.0
        assert (await auth.identify(f"Bearer {kept}"))[0] == "shop"
    finally:
        await server.close()
        await cli.close()


async def test_revoke_names_exactly_one_key_or_refuses(store: SqliteStore) -> None:
    first = await create_key(store, "shop", NOW)
    other = await create_key(store, "other", NOW)
    assert first[:10] != other[:10]  # create_key never reuses a prefix
    with pytest.raises(NotFound):
        await revoke_key(store, "pmk_nope00", NOW)
    with pytest.raises(NotFound):  # the prefix is another merchant's
        await revoke_key(store, first[:10], NOW, merchant_id="other")
    # Two keys sharing a prefix (an older store, or bad luck): never a guess.
    from paymesh.ports.store import ApiKey

    await store.add_api_key(ApiKey("h-a", "shop", NOW, "pmk_twin00"))
    await store.add_api_key(ApiKey("h-b", "other", NOW, "pmk_twin00"))
    with pytest.raises(BadRequest, match="names 2 keys"):
        await revoke_key(store, "pmk_twin00", NOW)
    assert all(k.revoked_at is None for k in await store.list_api_keys())
    key, now = await revoke_key(store, "pmk_twin00", NOW, merchant_id="other")
    assert (key.key_hash, now) == ("h-b", True)
    # The whole secret names its key alone; a second revoke changes nothing.
    key, now = await revoke_key(store, first, NOW)
    assert (key.prefix, now) == (first[:10], True)
    again, now = await revoke_key(store, first[:10], datetime.now(UTC))
    assert (again.revoked_at, now) == (NOW, False)
