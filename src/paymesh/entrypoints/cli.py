"""The `paymesh` command: serve, keys, demo."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from paymesh.config import Settings

app = typer.Typer(help="paymesh: payments in front of Stripe, Adyen and PayPal.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="where the SQLite file lives "
                                              "(env PAYMESH_DATA_DIR)")]
Database = Annotated[str | None, typer.Option("--database", help="sqlite:///PATH "
                                              "(env PAYMESH_DATABASE)")]


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option()] = 8080,
          data_dir: DataDir = None, database: Database = None,
          log_level: Annotated[str, typer.Option()] = "info") -> None:
    """Run the API server (and the PSP sandboxes, unless real PSP credentials are set)."""
    import uvicorn

    from paymesh.bootstrap import build_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    settings = Settings.from_env(host=host, port=port, data_dir=data_dir, database=database)
    uvicorn.run(build_app(settings), host=host, port=port, log_level=log_level,
                access_log=False, loop="uvloop", http="httptools", lifespan="on")


@keys_app.command("create")
def keys_create(merchant: Annotated[str, typer.Option(help="merchant id")],
                data_dir: DataDir = None, database: Database = None) -> None:
    """Create an API key for MERCHANT; the secret key is printed once, as the last line."""
    from paymesh.adapters.sqlite import SqliteStore
    from paymesh.service.apikeys import create_key
    from paymesh.service.errors import ApiError

    settings = Settings.from_env(data_dir=data_dir, database=database)

    async def run() -> str:
        store = SqliteStore(settings.sqlite_path)
        await store.open()
        try:
            return await create_key(store, merchant, datetime.now(UTC))
        finally:
            await store.close()

    try:
        secret = asyncio.run(run())
    except ApiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created an API key for merchant {merchant!r}; it is shown only once:",
               err=True)
    typer.echo(secret)


@app.command()
def sandbox(host: Annotated[str, typer.Option()] = "127.0.0.1",
            port: Annotated[int, typer.Option()] = 12111,
            webhook_base: Annotated[str | None, typer.Option(
                "--webhook-base", help="webhooks go to URL/webhooks/{psp}")] = None,
            log_level: Annotated[str, typer.Option()] = "warning") -> None:
    """Run the PSP sandboxes as their own process (point a server at them with
    PAYMESH_STRIPE_API_BASE=http://HOST:PORT/sandbox/stripe)."""
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from paymesh.sandbox.stripe import StripeSandbox, StripeSandboxSettings

    settings = Settings.from_env()
    stripe = StripeSandbox(StripeSandboxSettings(
        webhook_url=f"{webhook_base.rstrip('/')}/webhooks/stripe" if webhook_base else None,
        webhook_secret=settings.stripe_webhook_secret))

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await stripe.start()
        try:
            yield
        finally:
            await stripe.stop()

    sandboxes = Starlette(routes=[Mount("/sandbox/stripe", app=stripe.app)], lifespan=lifespan)
    uvicorn.run(sandboxes, host=host, port=port, log_level=log_level, access_log=False,
                loop="uvloop", http="httptools", lifespan="on")


@app.command()
def demo() -> None:
    """Run the whole flow end to end in a fresh temporary data dir and print what happened."""
    from paymesh.entrypoints.demo import run_demo

    raise typer.Exit(run_demo())


def main() -> None:
    app()
