"""The `paymesh` command: serve, worker, keys, rules, dlq, listen, trigger, demo.

An operator's command fails in one line: an unreachable database or bus, or a port in use,
is said as such on stderr with a non-zero exit, never as a traceback (`main`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from paymesh.config import Settings
from paymesh.entrypoints.cli_fraud import register as register_fraud_commands
from paymesh.entrypoints.cli_fraud_drift import register as register_fraud_drift
from paymesh.entrypoints.cli_keys import keys_app, store_settings, with_store
from paymesh.entrypoints.cli_live import live_commands
from paymesh.entrypoints.cli_reconcile import reconcile_command

if TYPE_CHECKING:
    from paymesh.adapters.aws.dead_letters import SqsDeadLetters

app = typer.Typer(
    help="paymesh: payments in front of Stripe, Adyen and PayPal.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(keys_app, name="keys")
live_commands(app)
app.command("reconcile")(reconcile_command)


def _print_version(value: bool) -> None:
    if value:
        from paymesh import __version__

        typer.echo(f"paymesh {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """paymesh: payments in front of Stripe, Adyen and PayPal."""


rules_app = typer.Typer(help="Event rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
dlq_app = typer.Typer(help="The dead-letter queue.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
fraud_app = typer.Typer(help="Fraud scoring.", no_args_is_help=True)
app.add_typer(fraud_app, name="fraud")
register_fraud_commands(fraud_app)
register_fraud_drift(fraud_app)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="where the SQLite file lives (env PAYMESH_DATA_DIR)"),
]
Database = Annotated[
    str | None,
    typer.Option("--database", help="sqlite:///PATH or postgresql://... (env PAYMESH_DATABASE)"),
]
Bus = Annotated[
    str | None,
    typer.Option(
        "--bus",
        help="nats://HOST:PORT: the event bus on NATS JetStream, for scale-out (env PAYMESH_BUS)",
    ),
]


Mode = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="sandbox (the default: test PSPs only) or live (real PSP credentials "
        "only; env PAYMESH_MODE)",
    ),
]


LogFormat = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text (the default) or json: one JSON object per line (env PAYMESH_LOG_FORMAT)",
    ),
]


Traces = Annotated[
    str | None,
    typer.Option(
        "--traces",
        help="off (the default), console (spans printed as JSON, for development) or otlp "
        "(to OTEL_EXPORTER_OTLP_ENDPOINT); env PAYMESH_TRACES",
    ),
]


def _configure_tracing(traces: str | None, service: str) -> None:
    """The OpenTelemetry SDK for `--traces` (issue 16); nothing at all when off."""
    from paymesh.entrypoints.tracing_setup import configure_tracing, trace_mode

    try:
        configure_tracing(trace_mode(traces), service)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    data_dir: DataDir = None,
    database: Database = None,
    bus: Bus = None,
    mode: Mode = None,
    sandbox_port: Annotated[
        int | None,
        typer.Option(
            "--sandbox-port",
            help="the built-in sandboxes' own loopback port (default: a "
            "free one, printed at start; env PAYMESH_SANDBOX_PORT)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    log_format: LogFormat = None,
    traces: Traces = None,
    deliverer_process: Annotated[
        bool | None,
        typer.Option(
            "--deliverer-process/--no-deliverer-process",
            help="embedded: run the event deliveries in a second process over the same "
            "database, to use a second core (env PAYMESH_DELIVERER_PROCESS)",
        ),
    ] = None,
) -> None:
    """Run the API server. In sandbox mode the PSP sandboxes run beside it on their own
    loopback port; in live mode only PSPs with real credentials are used. One line per PSP
    says which. With --bus nats://, run `paymesh worker` processes too: they deliver the
    events."""
    import uvicorn

    from paymesh.entrypoints.http.asgi import build_app
    from paymesh.entrypoints.http.server import build_config

    _configure_logging(log_format, log_level)
    _configure_tracing(traces, "paymesh-api")
    # A deliverer process (--deliverer-process) logs and traces as this one does.
    os.environ["PAYMESH_LOG_LEVEL"] = log_level
    if log_format:
        os.environ["PAYMESH_LOG_FORMAT"] = log_format
    if traces:
        os.environ["PAYMESH_TRACES"] = traces
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database=database,
        bus=bus,
        mode=mode,
        sandbox_port=sandbox_port,
        deliverer_process=deliverer_process,
        gc_freeze=True,  # a process of its own: see paymesh.adapters.collector
    )
    try:
        app = build_app(settings)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _preflight(settings, host, port)
    for line in app.state.psp_lines:
        typer.echo(line, err=True)
    # The limits (body, headers, header-read timeout, connections) and errors in the API's
    # shape come with the server configuration.
    uvicorn.Server(
        build_config(app, host=host, port=port, log_level=log_level, own_logging=True)
    ).run()


def _configure_logging(log_format: str | None, log_level: str) -> None:
    """Text or JSON lines, each with the request id and payment id (issue 16)."""
    from paymesh.entrypoints.http.logs import configure_logging

    try:
        configure_logging(log_format, log_level)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _settings(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def worker(
    data_dir: DataDir = None,
    database: Database = None,
    bus: Bus = None,
    log_level: Annotated[str, typer.Option()] = "info",
    log_format: LogFormat = None,
    traces: Traces = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="PAYMESH_WORKER_METRICS_PORT",
            help="serve this worker's /metrics on this port (off by default; behind "
            "PAYMESH_METRICS_TOKEN as the API's; env PAYMESH_WORKER_METRICS_PORT)",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host",
            envvar="PAYMESH_WORKER_METRICS_HOST",
            help="the address /metrics listens on (env PAYMESH_WORKER_METRICS_HOST)",
        ),
    ] = "127.0.0.1",
) -> None:
    """Run a worker: event routing and deliveries (retries, dead letters, the fraud stream),
    the outbox sweep and recovery. Run any number, next to any number of `serve`. With
    --metrics-port, each worker serves its own /metrics: scrape every one."""
    import signal

    # Until the event loop takes the signals over, SIGTERM ends start-up quietly: nothing has
    # been fetched yet, so nothing can be lost.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    from paymesh.bootstrap import Alongside, run_worker

    _configure_logging(log_format, log_level)
    _configure_tracing(traces, "paymesh-worker")
    settings = _settings(data_dir=data_dir, database=database, bus=bus, gc_freeze=True)
    if not settings.uses_postgres:
        typer.echo(
            "error: a worker shares the database with the API processes: it needs "
            "--database postgresql://... (an embedded server delivers its own events)",
            err=True,
        )
        raise typer.Exit(2)
    if settings.sandboxed_psps:  # the built-in sandboxes live inside `paymesh serve`
        typer.echo(
            "error: a worker reaches sandbox PSPs through a `paymesh sandbox` process: "
            "set PAYMESH_{" + ",".join(p.upper() for p in settings.sandboxed_psps) + "}_API_BASE",
            err=True,
        )
        raise typer.Exit(2)

    alongside: list[Alongside] = []
    if metrics_port is None:
        _preflight(settings)
    else:
        from paymesh.entrypoints.http.metrics import metrics_token
        from paymesh.entrypoints.worker_metrics import metrics_listener

        _preflight(settings, metrics_host, metrics_port)
        token = metrics_token()
        alongside.append(metrics_listener(metrics_host, metrics_port, token))
        typer.echo(
            f"metrics: http://{metrics_host}:{metrics_port}/metrics"
            + ("" if token else " (answers 404 until PAYMESH_METRICS_TOKEN is set)"),
            err=True,
        )

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # stop cleanly: unacked work goes back
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run_worker(settings, alongside)

    import uvloop

    uvloop.run(main())


@app.command()
def sandbox(
    host: Annotated[
        str, typer.Option(help="loopback only: a sandbox has no authentication")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 12111,
    webhook_base: Annotated[
        str | None, typer.Option("--webhook-base", help="webhooks go to URL/webhooks/{psp}")
    ] = None,
    log_level: Annotated[str, typer.Option()] = "warning",
    data_dir: DataDir = None,
) -> None:
    """Run the three PSP sandboxes as their own process, on loopback. Point servers at them
    with PAYMESH_{STRIPE,ADYEN,PAYPAL}_API_BASE=http://HOST:PORT/sandbox/{psp}; a server
    with the same --data-dir shares the sandboxes' generated secrets and certificate."""
    import contextlib
    from collections.abc import AsyncIterator

    import uvicorn
    from starlette.applications import Starlette

    from paymesh.sandbox.suite import LOOPBACK_HOSTS, SandboxSuite

    if host not in LOOPBACK_HOSTS:
        typer.echo(
            f"error: the sandboxes listen on loopback only ({', '.join(LOOPBACK_HOSTS)})"
            ": anyone who reaches one can capture or fail its payments",
            err=True,
        )
        raise typer.Exit(2)
    settings = _settings(data_dir=data_dir)
    suite = SandboxSuite(settings.sandbox_secrets, webhook_base)
    typer.echo(f"sandbox secrets and PayPal webhook certificate: {settings.sandbox_dir}")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await suite.start()
        try:
            yield
        finally:
            await suite.stop()

    sandboxes = Starlette(routes=list(suite.mounts()), lifespan=lifespan)
    uvicorn.run(
        sandboxes,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # Loopback only, no proxy in front: uvicorn's X-Forwarded-* middleware would only
        # cost a pass per request.
        proxy_headers=False,
    )


def _json_arg(text: str) -> object:
    """JSON given inline, or @FILE."""
    import msgspec

    raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
    return msgspec.json.decode(raw)


@rules_app.command("test")
def rules_test(
    pattern: Annotated[str, typer.Option(help="the event pattern: JSON or @FILE")],
    event: Annotated[str, typer.Option(help="the event: JSON or @FILE")],
) -> None:
    """EventBridge's TestEventPattern: prints true or false (exit 0 or 1); 2 if invalid."""
    from paymesh.rules import InvalidEventPattern, test_event_pattern

    try:
        result = test_event_pattern(_json_arg(pattern), _json_arg(event))  # type: ignore[arg-type]
    except InvalidEventPattern as exc:
        typer.echo(f"invalid pattern: {exc}", err=True)
        raise typer.Exit(2) from exc
    except (ValueError, OSError) as exc:
        typer.echo(f"cannot read input: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("true" if result else "false")
    raise typer.Exit(0 if result else 1)


@dlq_app.command("list")
def dlq_list(
    merchant: Annotated[
        str | None, typer.Option(help="merchant id (default: every merchant's)")
    ] = None,
    data_dir: DataDir = None,
    database: Database = None,
    limit: Annotated[int, typer.Option(help="at most this many per merchant")] = 50,
) -> None:
    """Dead letters, newest first per merchant, with every attempt's error: MERCHANT's, or
    every merchant's. On AWS (--database dynamodb://PREFIX): the letters in the targets' SQS
    dead-letter queues (--merchant needed there)."""
    from rich.console import Console
    from rich.table import Table

    from paymesh.ports.bus import Delivery

    settings = store_settings(data_dir, database, read_only=True)
    if settings.uses_dynamodb:
        if merchant is None:
            typer.echo("error: on AWS, dlq list needs --merchant", err=True)
            raise typer.Exit(2)
        _aws_dlq_list(settings, merchant, limit)
        return

    async def letters(store: Any) -> list[tuple[str, Delivery]]:
        # The store's port has dead letters per merchant only; every merchant that has (or
        # had) an API key is every merchant that can have a dead letter.
        merchants = (
            [merchant]
            if merchant
            else sorted({k.merchant_id for k in await store.list_api_keys(None)})
        )
        found: list[tuple[str, Delivery]] = []
        for m in merchants:
            dead, _ = await store.dead_letters(m, limit, None)
            found.extend((m, d) for d in dead)
        return found

    rows = with_store(settings, letters)
    table = Table(title=f"dead letters of {merchant}" if merchant else "dead letters")
    for col in ("merchant", "id", "event", "rule/target", "attempts", "last error"):
        table.add_column(col)
    for m, d in rows:
        table.add_row(
            m,
            d.id,
            d.event_id,
            f"{d.rule}/{d.target.id}",
            str(d.attempts),
            d.history[-1].error if d.history else "-",
        )
    Console(width=200).print(table)


@dlq_app.command("redrive")
def dlq_redrive(
    delivery_id: str,
    merchant: Annotated[str, typer.Option(help="merchant id")],
    data_dir: DataDir = None,
    database: Database = None,
) -> None:
    """Send a dead letter to its target again (once); a running server picks it up. On AWS:
    the event is handed to its target again and the letter leaves its SQS queue."""
    settings = store_settings(data_dir, database, read_only=True)
    if settings.uses_dynamodb:
        done = _aws_dead_letters(settings).redrive(merchant, delivery_id)
    else:
        done = with_store(
            settings, lambda store: store.redrive(merchant, delivery_id, datetime.now(UTC))
        )
    if not done:
        typer.echo(f"no dead letter {delivery_id} for {merchant} (or already redriven)", err=True)
        raise typer.Exit(1)
    typer.echo(f"redriven: {delivery_id}")


def _aws_dead_letters(settings: Settings) -> SqsDeadLetters:
    import boto3

    from paymesh.adapters.aws.dead_letters import SqsDeadLetters, lambda_invoker

    return SqsDeadLetters(
        boto3.client("sqs"), settings.dynamodb_prefix, lambda_invoker(boto3.client("lambda"))
    )


def _aws_dlq_list(settings: Settings, merchant: str, limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dead letters of {merchant} (SQS)")
    for col in ("id", "event", "type", "rule/target", "error"):
        table.add_column(col)
    for letter in _aws_dead_letters(settings).letters(merchant, limit):
        target = letter.target_arn.rsplit(":", 1)[-1]
        table.add_row(
            letter.id, letter.event_id, letter.detail_type, f"{letter.rule}/{target}", letter.error
        )
    Console(width=200).print(table)


@fraud_app.command("replay")
def fraud_replay(
    path: Annotated[Path, typer.Argument(help="JSON Lines, or CSV if *.csv")],
    model_process: Annotated[
        bool,
        typer.Option(
            "--model-process",
            help="score the learned model's half in a second process, on another core, "
            "while this one reads and learns the next batch: the same output, faster on a "
            "long stream (the child takes about half a second to start)",
        ),
    ] = False,
) -> None:
    """Score a stream offline, one JSON line per transaction, each scored before any later
    one is seen: transaction_id, risk_score, risk_factors, decision."""
    import sys

    from paymesh.fraud.replay import run_replay
    from paymesh.fraud.rules import RuleSet
    from paymesh.fraud.scorer import FraudEngine, load_model
    from paymesh.fraud.transactions import TransactionError

    try:
        settings = Settings.from_env()
        # The configured rules and model: the decisions `paymesh serve` makes inline.
        engine = FraudEngine(
            RuleSet.load(settings.fraud_rules), model=load_model(settings.fraud_model)
        )
        run_replay(path, sys.stdout, engine, model_process)
    except (TransactionError, OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def demo() -> None:
    """Run the whole flow end to end in a fresh temporary data dir and print what happened."""
    from paymesh.entrypoints.demo import run_demo

    raise typer.Exit(run_demo())


def _preflight(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Before starting: the port is free, the database and the bus answer. Found here, each
    is one clear line; found by the server's startup, it would be a traceback in its log."""
    from paymesh.entrypoints.infra_errors import check_infrastructure

    problem = check_infrastructure(settings, host, port)
    if problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1)


def main() -> None:
    from paymesh.entrypoints.infra_errors import describe

    try:
        app()
    except Exception as exc:
        # An unreachable database or bus mid-command: one line, not a traceback. Anything
        # else is a bug, and its traceback is what a bug report needs.
        problem = describe(exc)
        if problem is None:
            raise
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None
