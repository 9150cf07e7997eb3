"""Where the tests' PostgreSQL comes from: the machine's own server, or the `pgserver` wheel's
binaries on a machine without one. CI forces the wheel's (PAYMESH_TEST_POSTGRES=package) on a
machine that has both, so the path a fresh machine takes stays proven."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import asyncpg
import pytest

from tests.support import postgres as pg
from tests.support.postgres import PostgresUnavailable, find_bindir, running_postgres


def _wheel_bindirs() -> list[Path]:
    return pg._package_bindirs()


def test_the_wheel_provides_the_server_programs() -> None:
    [bindir] = _wheel_bindirs()
    assert bindir.parts[-3:] == ("pgserver", "pginstall", "bin")
    for program in ("initdb", "pg_ctl", "postgres"):
        assert (bindir / program).is_file(), program


def test_package_uses_the_wheels_server_and_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYMESH_PG_BINDIR", raising=False)
    monkeypatch.setenv("PAYMESH_TEST_POSTGRES", "package")
    assert find_bindir() == _wheel_bindirs()[0]

    async def version(dsn: str) -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    with running_postgres() as server:
        assert server.bindir.parts[-3:] == ("pgserver", "pginstall", "bin")
        assert asyncio.run(version(server.dsn())).startswith("16.")
    assert not server.root.exists()  # stopped and removed


def test_system_never_takes_the_wheels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYMESH_PG_BINDIR", raising=False)
    monkeypatch.setenv("PAYMESH_TEST_POSTGRES", "system")
    try:
        found = find_bindir()
    except PostgresUnavailable as exc:  # a machine without its own server says so
        assert "PAYMESH_TEST_POSTGRES=system" in str(exc)
    else:
        assert found not in _wheel_bindirs()


def test_a_wheel_that_is_not_installed_fails_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PAYMESH_PG_BINDIR", raising=False)
    monkeypatch.setenv("PAYMESH_TEST_POSTGRES", "package")
    monkeypatch.setattr(pg, "_package_bindirs", lambda: [])
    with pytest.raises(PostgresUnavailable, match=r"dev extras.*pgserver"):
        find_bindir()


def test_an_unknown_source_is_refused_naming_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYMESH_PG_BINDIR", raising=False)
    monkeypatch.setenv("PAYMESH_TEST_POSTGRES", "docker")
    with pytest.raises(PostgresUnavailable, match="expected one of auto, system, package"):
        find_bindir()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
def test_as_root_a_wheel_out_of_the_servers_reach_is_copied_where_it_can_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A virtualenv under /root (mode 0700): the server's account cannot reach its wheel."""
    [bindir] = _wheel_bindirs()
    site = bindir.parents[2]
    private = Path(tempfile.mkdtemp(prefix="paymesh-private-"))  # 0700, root's
    try:
        for part in ("bin", "lib", "share"):
            shutil.copytree(bindir.parent / part, private / "pgserver" / "pginstall" / part)
        shutil.copytree(site / "pgserver.libs", private / "pgserver.libs")
        hidden = private / "pgserver" / "pginstall" / "bin"
        account = pg._server_account()
        assert account is not None
        assert not pg._runs_as(account, hidden)

        root = Path(tempfile.mkdtemp(prefix="paymesh-pg-"))
        os.chown(root, account.pw_uid, account.pw_gid)
        try:
            monkeypatch.setattr(pg, "_package_bindirs", lambda: [hidden])
            staged = pg._runnable_bindir(hidden, account, root)
            assert staged.is_relative_to(root)
            assert pg._runs_as(account, staged)
            assert pwd.getpwuid(staged.stat().st_uid).pw_name == account.pw_name
        finally:
            shutil.rmtree(root)
    finally:
        shutil.rmtree(private)
