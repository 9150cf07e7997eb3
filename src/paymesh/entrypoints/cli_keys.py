"""`paymesh keys`: create, list and revoke API keys, straight on the store.

No secret is ever shown again after `create`: `list` shows each key's prefix (`pmk_` and six
characters), which is also what `revoke` takes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from paymesh.config import Settings

if TYPE_CHECKING:
    from paymesh.ports.bus_backend import BusBackend

T = TypeVar("T")

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where the SQLite file lives (env PAYMESH_DATA_DIR)"),
]
Database = Annotated[
    str | None,
    typer.Option("--database", help="sqlite:///PATH or postgresql://... (env PAYMESH_DATABASE)"),
]


def store_settings(
    data_dir: Path | None, database: str | None, *, read_only: bool = False
) -> Settings:
    """Settings for a command that only opens the store (keys, dlq).

    Not `Settings.from_env`: that resolves the PSPs, and in sandbox mode creates the data
    directory's sandbox secrets, a side effect a command that lists keys must not have. Only
    where the store is matters here. A read-only command on SQLite refuses a database file
    that is not there instead of creating an empty one (and its directory) to list nothing.
    """
    settings = Settings(
        data_dir=data_dir or Path(os.environ.get("PAYMESH_DATA_DIR") or "paymesh-data"),
        database=database or os.environ.get("PAYMESH_DATABASE") or None,
    )
    if settings.uses_postgres or settings.uses_dynamodb:
        return settings
    try:
        path = settings.sqlite_path
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if read_only and not path.exists():
        typer.echo(
            f"error: no paymesh database at {path} (give --data-dir or --database, "
            "or PAYMESH_DATA_DIR / PAYMESH_DATABASE)",
            err=True,
        )
        raise typer.Exit(2)
    return settings


def _settings(data_dir: Path | None, database: str | None, read_only: bool = False) -> Settings:
    return store_settings(data_dir, database, read_only=read_only)


def with_store(settings: Settings, run: Callable[[BusBackend], Awaitable[T]]) -> T:
    """Open the configured store, run `run` on it, close it: for one-shot commands."""
    from paymesh.bootstrap import build_store

    async def go() -> T:
        store = build_store(settings)
        await store.open()
        try:
            return await run(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@keys_app.command("create")
def keys_create(
    merchant: Annotated[str, typer.Option(help="merchant id")],
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Create an API key for MERCHANT; the secret key is printed once, as the last line."""
    from paymesh.service.apikeys import create_key
    from paymesh.service.errors import ApiError

    settings = _settings(data_dir, database)
    try:
        secret = with_store(settings, lambda store: create_key(store, merchant, datetime.now(UTC)))
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created an API key for merchant {merchant!r}; it is shown only once:", err=True)
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    merchant: Annotated[str | None, typer.Option(help="only this merchant's")] = None,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Every API key (or MERCHANT's), oldest first: prefix, merchant, created, revoked."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings(data_dir, database, read_only=True)
    keys = with_store(settings, lambda store: store.list_api_keys(merchant))
    table = Table(title="API keys" + (f" of {merchant}" if merchant else ""))
    table.add_column("key", no_wrap=True)
    table.add_column("merchant", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("revoked", no_wrap=True)
    for key in keys:
        table.add_row(key.prefix, key.merchant_id, _when(key.created_at), _when(key.revoked_at))
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[
        str, typer.Argument(help="the key's prefix, as `paymesh keys list` shows it (pmk_XXXXXX)")
    ],
    merchant: Annotated[
        str | None, typer.Option(help="the key's merchant, when a prefix names several keys")
    ] = None,
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Revoke a key for good: every running server refuses it within 2 seconds."""
    from paymesh.service.apikeys import revoke_key
    from paymesh.service.errors import ApiError, NotFound

    settings = _settings(data_dir, database, read_only=True)
    try:
        revoked, now = with_store(
            settings, lambda store: revoke_key(store, key, datetime.now(UTC), merchant)
        )
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1 if isinstance(exc, NotFound) else 2) from exc
    if now:
        typer.echo(f"revoked {revoked.prefix} of merchant {revoked.merchant_id!r}")
    else:
        typer.echo(
            f"{revoked.prefix} of merchant {revoked.merchant_id!r} was already revoked "
            f"at {_when(revoked.revoked_at)}"
        )
