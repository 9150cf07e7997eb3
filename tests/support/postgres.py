"""A throwaway PostgreSQL server for the tests, started from the machine's own binaries.

`running_postgres()` runs `initdb` into a new temporary directory, starts the server on a free
loopback port (its unix socket in the same directory, fsync and synchronous commit on, as in
production), and on exit stops it and removes the directory. The tests need nothing running
beforehand: only the server binaries, which Debian's `postgresql` package installs.

A reaper process stops the server and removes the directory if the test run dies without
cleaning up (SIGKILL, a second Ctrl-C), so no server outlives the run that started it.

PostgreSQL refuses to run as root. As root (CI, containers) the cluster belongs to the
`postgres` user the Debian package creates, or to `nobody` where there is none, and every
server command runs as that user.

Nothing here skips: when there are no binaries or the server will not start, it raises
`PostgresUnavailable` saying why, with the server's log.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

_SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
_INSTALL_HINT = "install the server: `apt-get install -y postgresql` (Debian/Ubuntu)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started for the tests; the message says why."""


def find_bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: PAYMESH_PG_BINDIR, `pg_config --bindir`,
    Debian's /usr/lib/postgresql/<newest>/bin, then PATH."""
    candidates: list[Path] = []
    if override := os.environ.get("PAYMESH_PG_BINDIR"):
        candidates.append(Path(override))
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 check=True, timeout=10).stdout.strip()
            candidates.append(Path(out))
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates += sorted(debian, key=_major_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all((bindir / name).is_file() for name in _SERVER_PROGRAMS):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "nowhere (no pg_config, none on PATH)"
    raise PostgresUnavailable(
        f"the tests start their own PostgreSQL server, but no directory holds "
        f"{', '.join(_SERVER_PROGRAMS)} (looked in: {looked}); {_INSTALL_HINT}, "
        f"or set PAYMESH_PG_BINDIR")


def _major_version(bindir: Path) -> int:
    """/usr/lib/postgresql/15/bin -> 15 (0 when the folder is not a number)."""
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("running as root, and PostgreSQL refuses to: there is no "
                              "`postgres` or `nobody` account to run it as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str = "paymesh"
    password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str, template: str = "template0") -> str:
        """A new database (a copy of `template`); returns its DSN."""
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await conn.close()
        return self.dsn(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(the server log is empty)"


class _Runner:
    """Runs the server's programs, as the unprivileged account when we are root."""

    def __init__(self, server: PostgresServer, account: pwd.struct_passwd | None) -> None:
        self.server = server
        self.account = account
        # The server reads PGPORT, PGDATA and friends; the test run's own must not leak in.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env.update(LC_ALL="C", TZ="UTC")

    def __call__(self, program: str, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.server.bindir / program), *args]
        as_user = {} if self.account is None else {
            "user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}
        try:
            done = subprocess.run(cmd, cwd=self.server.root, env=self.env, capture_output=True,
                                  text=True, timeout=timeout, check=False, **as_user)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"could not run {program}: {exc}") from exc
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(cmd)}` failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n-- server log --\n{self.server.log_tail()}")


def _init_cluster(server: PostgresServer, run: _Runner) -> None:
    password_file = server.root / "password"
    password_file.write_text(server.password)
    if run.account is not None:
        os.chown(password_file, run.account.pw_uid, run.account.pw_gid)
    # --no-sync: only initdb's own final flush is skipped; the server runs with fsync on.
    run("initdb", "-D", str(server.data_dir), "-U", server.user, f"--pwfile={password_file}",
        "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-locale",
        "--no-sync")
    password_file.unlink()
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# paymesh tests: loopback only, durable commits as in production\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{server.socket_dir}'\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "max_connections = 200\n"
            "timezone = 'UTC'\n")


# Waits for EOF on stdin, which comes when the test run ends however it ends (even SIGKILL),
# then stops a server still running and removes the directory: nothing outlives the run.
_REAPER = ('cat >/dev/null; if [ -f "$1/data/postmaster.pid" ]; then'
           ' "$2" stop -w -m immediate -D "$1/data" >/dev/null 2>&1; fi; rm -rf "$1"')


def _start_reaper(server: PostgresServer, run: _Runner) -> subprocess.Popen[bytes]:
    as_user = {} if run.account is None else {
        "user": run.account.pw_uid, "group": run.account.pw_gid, "extra_groups": []}
    # Its own session: a Ctrl-C meant for pytest must not stop the reaper before it reaps.
    return subprocess.Popen(["/bin/sh", "-c", _REAPER, "paymesh-pg-reaper", str(server.root),
                             str(server.bindir / "pg_ctl")], stdin=subprocess.PIPE,
                            cwd="/", env=run.env, start_new_session=True, **as_user)


def _start(server: PostgresServer, run: _Runner, attempts: int = 3) -> None:
    # The port is free when picked but may be taken before the server binds it: try again.
    for attempt in range(attempts):
        server.port = _free_port()
        try:
            run("pg_ctl", "start", "-w", "-t", "60", "-D", str(server.data_dir),
                "-l", str(server.log_file), "-o", f"-p {server.port}", timeout=90)
            return
        except PostgresUnavailable:
            if attempt + 1 == attempts or "could not bind" not in server.log_tail():
                raise


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL server for the duration of the block; raises PostgresUnavailable."""
    bindir = find_bindir()
    account = _server_account()
    # Not pytest's tmp_path: its parents are private to root, and the server may not be root.
    root = Path(tempfile.mkdtemp(prefix="paymesh-pg-"))
    server = PostgresServer(bindir=bindir, root=root, port=0)
    run = _Runner(server, account)
    reaper: subprocess.Popen[bytes] | None = None
    try:
        server.socket_dir.mkdir()
        if account is not None:
            for path in (root, server.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        reaper = _start_reaper(server, run)
        _init_cluster(server, run)
        _start(server, run)
        yield server
    finally:
        _stop(server, run)
        shutil.rmtree(root, ignore_errors=True)
        if reaper is not None:
            reaper.communicate(timeout=30)


def _stop(server: PostgresServer, run: _Runner) -> None:
    """Stop whatever runs on the cluster, even a server whose start timed out."""
    for mode in ("fast", "immediate"):
        if not (server.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(PostgresUnavailable):
            run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(server.data_dir))
