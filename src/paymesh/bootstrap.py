"""The composition root: the one place that wires adapters to ports.

Nothing is built at import time. `build_core` builds what every process shares; `build_api`
adds what an API process's routes call and the background work of its lifetime (the HTTP app
around it is the entrypoint's: `paymesh.entrypoints.http.asgi`); `run_worker` runs a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paymesh import entropy
from paymesh.adapters.collector import freeze_startup
from paymesh.adapters.deliverer_process import (
    DelivererLock,
    DelivererProcess,
    DelivererRules,
    ServerLine,
)
from paymesh.adapters.heap import heap_releaser, pin_mmap_threshold
from paymesh.adapters.http_targets import AiohttpTargetSender
from paymesh.adapters.metrics import (  # observability (issue 16): see build_core
    MeteredConnector,
    MeteredRiskScorer,
    PaymeshMetrics,
    delivery_counter,
    observe_commits,
)
from paymesh.adapters.metrics.beside import PUBLISH_SECONDS, exposition_file, publish
from paymesh.adapters.metrics.loop_watch import LoopWatch
from paymesh.adapters.notify import (
    TWILIO_API_BASE,
    JinjaTemplates,
    SmtpEmailSender,
    SmtpSettings,
    TwilioSmsSender,
)
from paymesh.adapters.sqlite import SqliteStore
from paymesh.config import PSPS, ConfigError, Settings
from paymesh.connectors.aiohttp_transport import AiohttpTransport
from paymesh.connectors.registry import REGISTRY, ConnectorSetup
from paymesh.connectors.settlement_reports import sandbox_source
from paymesh.connectors.transport import HttpTransport
from paymesh.domain.events import draw_event_ids_from
from paymesh.domain.payment import Payment
from paymesh.fraud import FraudEngine, FraudRiskScorer
from paymesh.fraud import RuleSet as FraudRuleSet
from paymesh.fraud.scorer import load_model
from paymesh.ports.bus import DEFAULT, Rule, Target
from paymesh.ports.bus_backend import BusBackend
from paymesh.ports.connector import Connector
from paymesh.ports.ratelimit import RateLimit
from paymesh.ports.rule_mirror import NoMirror, RuleMirror
from paymesh.ports.workflows import ReviewWorkflow
from paymesh.sandbox.suite import SandboxListener, SandboxSuite
from paymesh.service.apikeys import Authenticator
from paymesh.service.bus import Builtin, EventBus
from paymesh.service.circuit import CircuitBreakers
from paymesh.service.event_router import Router, RulesWatcher
from paymesh.service.fraud_stream import FeatureCheckpoint, FraudStream, fraud_review
from paymesh.service.handlers import (
    Analytics,
    inline_grace,
    payment_retry,
    placeholder,
    process_payment,
    send_confirmation,
)
from paymesh.service.housekeeping import Housekeeping
from paymesh.service.payments import PaymentService
from paymesh.service.psp_routing import RoutingService
from paymesh.service.ratelimit import RateLimiter
from paymesh.service.reconciliation import ReconciliationJob, ReportSource
from paymesh.service.recovery import Reconciler
from paymesh.service.reviews import ReviewService
from paymesh.service.rule_definitions import definition_of, to_rule
from paymesh.service.webhooks import WebhookService

if TYPE_CHECKING:  # imported when the NATS bus is configured, not by every process
    from nats.aio.client import Client

    from paymesh.adapters.nats.bus import OutboxRelay
    from paymesh.adapters.nats.circuit_feed import NatsCircuitFeed
    from paymesh.adapters.nats.fraud_feed import NatsFraudFeed

log = logging.getLogger("paymesh")

#: Built-in targets tried as their event is routed, not claimed and delivered later: quick,
#: in memory and idempotent (the fraud stream's alert commits with its own mark). Under the
#: default rules, most of a payment's deliveries.
ON_ROUTING = ("fraud_detection", "analytics", "update_inventory")


def build_store(settings: Settings) -> BusBackend:
    """SQLite (embedded, one process), PostgreSQL (any number of processes) or DynamoDB
    (AWS: Lambda functions)."""
    if settings.uses_dynamodb:
        from paymesh.adapters.dynamodb import DynamoStore

        return DynamoStore(settings.dynamodb_prefix)
    if settings.uses_postgres:
        from paymesh.adapters.postgres import PostgresStore

        assert settings.database is not None
        return PostgresStore(settings.database)
    return SqliteStore(settings.sqlite_path, commit_delay=settings.sqlite_commit_delay_ms / 1000)


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_connectors(
    settings: Settings,
    sandbox_url: str | None = None,
    sandboxes: Mapping[str, object] | None = None,
    transport: HttpTransport | None = None,
) -> dict[str, Connector]:
    """One connector per enabled PSP, in the registry's order (the default failover order).

    A disabled PSP (live mode, not configured) gets no connector at all, so nothing can route
    or fail over to it; a built-in sandbox PSP is reached at `sandbox_url`. Every connector
    shares `transport`: one connection pool per process."""

    def base(psp: str) -> str:
        configured = settings.api_base_of(psp)
        if configured:
            return configured
        if sandbox_url is None:
            raise ConfigError(
                f"{psp}: its sandbox is built into `paymesh serve`; a process "
                f"without it needs PAYMESH_{psp.upper()}_API_BASE pointing at a "
                "`paymesh sandbox`"
            )
        return f"{sandbox_url}/sandbox/{psp}"

    enabled = settings.enabled_psps
    return {
        psp: entry.connector(
            ConnectorSetup(settings, base(psp), transport, (sandboxes or {}).get(psp))
        )
        for psp, entry in REGISTRY.items()
        if psp in enabled
    }


def psp_lines(settings: Settings, listener: SandboxListener | None) -> list[str]:
    """One line per PSP for the start-up log: live, sandbox (and where), or disabled."""
    lines = []
    for psp in PSPS:
        mode = settings.psp_mode(psp)
        if mode == "disabled":
            lines.append(f"{psp}: disabled (live mode and no credentials configured)")
        elif mode == "live":
            lines.append(f"{psp}: LIVE at {settings.api_base_of(psp)}")
        elif settings.api_base_of(psp):
            lines.append(f"{psp}: sandbox (test money only) at {settings.api_base_of(psp)}")
        else:
            where = listener.psp_url(psp) if listener else "(not started)"
            lines.append(f"{psp}: sandbox (test money only), built in, at {where} (loopback only)")
    return lines + confirmation_lines(settings, listener)


#: Twilio's test number that sends successfully: the SMS sandbox's sender by default.
SANDBOX_SMS_FROM = "+15005550006"


def confirmation_lines(settings: Settings, listener: SandboxListener | None) -> list[str]:
    """Where customer confirmations go: one line for email, one for SMS."""
    if settings.smtp_configured:
        email = (
            f"email: confirmations sent through {settings.smtp_host}:"
            f"{settings.smtp_port_or_default} ({settings.smtp_security})"
        )
    else:
        email = "email: no PAYMESH_SMTP_HOST, confirmations recorded, not sent"
    sms_base = _sms_base(settings, listener)
    if settings.sms_mode == "live":
        sms = f"sms: LIVE through Twilio at {sms_base}"
    elif sms_base:
        sms = f"sms: sandbox (no message leaves this machine) at {sms_base}"
    else:
        sms = "sms: no Twilio configured, confirmations recorded, not sent"
    return [email, sms]


def _sms_base(settings: Settings, listener: SandboxListener | None) -> str | None:
    if settings.sms_mode == "off":
        return None
    if settings.twilio_api_base:
        return settings.twilio_api_base
    if settings.sms_mode == "live":
        return TWILIO_API_BASE
    if listener is not None and "twilio" in listener.suite.boxes:
        return f"{listener.url}/sandbox/twilio"
    return None  # sandbox mode without the built-in listener (a worker): not sent


def build_confirmations(
    settings: Settings, listener: SandboxListener | None
) -> tuple[SmtpEmailSender | None, TwilioSmsSender | None]:
    """The email and SMS senders the settings configure; None for a channel not configured,
    whose confirmations are then recorded, not sent."""
    email = None
    if settings.smtp_host:
        assert settings.mail_from is not None  # Settings checks it
        email = SmtpEmailSender(
            SmtpSettings(
                host=settings.smtp_host,
                port=settings.smtp_port_or_default,
                mail_from=settings.mail_from,
                security=settings.smtp_security,
                username=settings.smtp_username,
                password=settings.smtp_password,
            )
        )
    elif settings.is_live:
        log.warning(
            "live mode without PAYMESH_SMTP_HOST: customers' email confirmations are "
            "recorded but NOT sent; configure PAYMESH_SMTP_HOST and PAYMESH_MAIL_FROM"
        )
    sms = None
    base = _sms_base(settings, listener)
    if base and settings.twilio_account_sid and settings.twilio_auth_token:
        sender = settings.twilio_from or (None if settings.is_live else SANDBOX_SMS_FROM)
        if sender:
            sms = TwilioSmsSender(
                base,
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                sender,
                timeout=settings.psp_timeout,
            )
    return email, sms


def builtin_names() -> set[str]:
    return {
        "send_confirmation",
        "process_payment",
        "update_inventory",
        "payment_retry",
        "fraud_review",
        "fraud_detection",
        "analytics",
    }


def default_rules(inventory_url: str | None) -> list[Rule]:
    """The reference's rules (DESIGN.md's table), from the packaged default rules file."""
    import msgspec

    raw = resources.files("paymesh.service").joinpath("default_rules.json").read_bytes()
    rules = []
    for item in msgspec.json.decode(raw):
        name = item.pop("name")
        rule = to_rule(DEFAULT, name, definition_of(item), builtin_names())
        if inventory_url:  # the merchant's inventory service, as a signed HTTP target
            rule = replace(
                rule,
                targets=tuple(
                    Target(id=t.id, type="http", url=inventory_url, retry_policy=t.retry_policy)
                    if t.name == "update_inventory"
                    else t
                    for t in rule.targets
                ),
            )
        rules.append(rule)
    return rules


@dataclass
class Core:
    """Everything an API process and a worker share: the store, the PSPs, the payment
    service, the fraud engine, the bus's router and built-in targets."""

    settings: Settings
    store: BusBackend
    listener: SandboxListener | None
    connectors: dict[str, Connector]
    engine: FraudEngine
    payments: PaymentService
    routing: RoutingService
    checkpoint: FeatureCheckpoint
    bus: EventBus
    reconciler: Reconciler
    sender: AiohttpTargetSender
    #: The one HTTP client pool every connector shares (closed after them).
    transport: HttpTransport
    #: Called after every commit; what it wakes (the bus, or the relay) is added at start.
    on_commit: Callable[[], None]
    wake: list[Callable[[], None]]
    #: With the NATS bus: its connection (made unconnected, connected at start) and the fraud
    #: feed over it, which shares every process's observations and outcomes with the others.
    nc: Client | None = None
    feed: NatsFraudFeed | None = None
    #: With the NATS bus: the PSP circuits this process opens and closes, told to the others.
    circuit_feed: NatsCircuitFeed | None = None
    #: This process's Prometheus metrics (observability; scraped at /metrics).
    metrics: PaymeshMetrics = field(default_factory=PaymeshMetrics)
    #: The SMS sender's connection pool, closed with the core.
    sms: TwilioSmsSender | None = None
    #: Where each PSP's settlement reports are read, for reconciliation.
    report_sources: dict[str, ReportSource] = field(default_factory=dict)

    #: Whether this process's fraud engine is the one whose learning is kept (loaded at
    #: open, saved at close): not a deliverer's, which scores nothing.
    keeps_features: bool = True

    async def open(self) -> None:
        await self.store.open()
        self.bus.router.load(await self.store.rules())
        if self.keeps_features:
            await self.checkpoint.load()

    async def close(self) -> None:
        try:
            if self.keeps_features:
                await self.checkpoint.save()
        except Exception:  # never let it keep the rest of shutdown from running
            log.exception("fraud checkpoint at shutdown failed")
        await self.sender.aclose()
        if self.sms is not None:
            await self.sms.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        await self.transport.aclose()
        await self.store.close()


def build_core(
    settings: Settings,
    with_sandbox: bool = True,
    *,
    store: BusBackend | None = None,
    connectors: dict[str, Connector] | None = None,
) -> Core:
    """The core from `settings`. `store` and `connectors` replace what the settings would
    build (tests inject the in-memory store and fake PSPs here; nothing in the configuration
    can select them, so a deployment never runs on a fake)."""
    # Before anything big is allocated, so no big block ever lands in the heap for good.
    pin_mmap_threshold()
    # Events' ids from the pooled randomness the service's own ids use (see paymesh.entropy),
    # in time order: three indexes of the store are keyed by them (`entropy.uuid7`).
    draw_event_ids_from(entropy.uuid7)
    store = store if store is not None else build_store(settings)
    listener = None
    if (settings.uses_sandbox or settings.sms_sandboxed) and with_sandbox and connectors is None:
        suite = SandboxSuite(
            settings.sandbox_secrets,
            settings.self_url,
            settings.sandboxed_psps,
            sms=settings.sms_sandboxed,
        )
        listener = SandboxListener(suite, port=settings.sandbox_port)
    email, sms = build_confirmations(settings, listener)
    transport = AiohttpTransport()
    if connectors is None:
        connectors = build_connectors(
            settings,
            listener.url if listener else None,
            listener.suite.boxes if listener else None,
            transport,
        )
    # -- observability (issue 16): PSP calls timed, committed outcomes counted ------------
    metrics = PaymeshMetrics()
    connectors = {name: MeteredConnector(c, metrics) for name, c in connectors.items()}
    observe_commits(store, metrics)
    # -- end observability ------------------------------------------------------------------
    engine = FraudEngine(
        FraudRuleSet.load(settings.fraud_rules), model=load_model(settings.fraud_model)
    )
    nc: Client | None = None
    feed: NatsFraudFeed | None = None
    circuit_feed: NatsCircuitFeed | None = None
    breakers = CircuitBreakers()
    if settings.uses_nats:
        from nats.aio.client import Client

        from paymesh.adapters.nats.circuit_feed import NatsCircuitFeed
        from paymesh.adapters.nats.fraud_feed import NatsFraudFeed

        nc = Client()
        feed = NatsFraudFeed(nc, engine, consumer=settings.fraud_feed_consumer)
        circuit_feed = NatsCircuitFeed(nc, breakers, f"{settings.nats_prefix}.circuit")
        breakers.feed = circuit_feed
    # Failover order when a merchant has no table: the configured PSPs, Stripe first.
    routing = RoutingService(
        store,
        list(connectors),
        list(connectors),
        breakers,
        utcnow,
        ttl=2.0 if settings.shared_store else None,
    )
    wake: list[Callable[[], None]] = []

    def on_commit() -> None:
        for hook in wake:
            hook()

    payments = PaymentService(
        store,
        connectors,
        MeteredRiskScorer(FraudRiskScorer(engine, feed=feed), metrics),
        utcnow,
        on_commit=on_commit,
        routing=routing,
        breakers=breakers,
    )
    inline = inline_grace(settings.psp_timeout)
    builtins: dict[str, Builtin] = {
        "send_confirmation": send_confirmation(
            store,
            utcnow,
            JinjaTemplates(settings.templates_dir),
            email,
            sms,
            after_send=_crash if settings.fault_crash_after_send else None,
        ),
        "process_payment": process_payment(payments, utcnow, grace=inline),
        "update_inventory": placeholder("update_inventory", "PAYMESH_INVENTORY_URL"),
        "payment_retry": payment_retry(
            payments, utcnow, base=timedelta(seconds=settings.bus_retry_base * 2)
        ),
        "fraud_review": fraud_review(payments, utcnow),
        "fraud_detection": FraudStream(engine, store, utcnow, feed=feed),
        "analytics": Analytics(),
    }
    # Live: targets must be https. Either way only public addresses, bar the allow-list.
    sender = AiohttpTargetSender(require_https=settings.is_live, allow=settings.target_allowlist)
    bus = EventBus(
        store,
        Router(default_rules(settings.inventory_url)),
        builtins,
        sender,
        utcnow,
        retry_base_seconds=settings.bus_retry_base,
        default_signing_secret=settings.delivery_signing_secret,
        target_policy=sender.policy,
        start_delays={"process_payment": inline.total_seconds()},
        # Tried as their event is routed, which spares each a claim and a save. Embedded
        # only here: with a shared database several processes may route one event at once
        # (on NATS one worker routes an event, and its dispatcher tries them instead).
        on_routing=() if settings.shared_store else ON_ROUTING,
    )
    # observability (issue 16): delivery results counted; circuits read at scrape time.
    bus.targets.observers.append(delivery_counter(metrics))
    metrics.watch_circuits(routing.circuits)
    reconciler = Reconciler(
        payments,
        utcnow,
        grace=recovery_grace(settings),
        interval=settings.recovery_interval,
    )
    return Core(
        settings=settings,
        store=store,
        listener=listener,
        connectors=connectors,
        engine=engine,
        payments=payments,
        routing=routing,
        checkpoint=FeatureCheckpoint(engine, store, utcnow, after_save=heap_releaser()),
        bus=bus,
        reconciler=reconciler,
        sender=sender,
        transport=transport,
        on_commit=on_commit,
        wake=wake,
        nc=nc,
        feed=feed,
        circuit_feed=circuit_feed,
        metrics=metrics,
        sms=sms,
        report_sources=report_sources(settings, listener),
    )


def report_sources(settings: Settings, listener: SandboxListener | None) -> dict[str, ReportSource]:
    """Each sandbox PSP's settlement reports, served beside its API (a `paymesh sandbox`
    process, or the built-in one). A live PSP has none here: its reporting API is not read
    yet, so its reports come as files (`paymesh reconcile --report FILE`)."""
    sources = {}
    for psp in settings.enabled_psps:
        if settings.psp_mode(psp) != "sandbox":
            continue
        base = settings.api_base_of(psp) or (listener.psp_url(psp) if listener else None)
        if base:
            sources[psp] = sandbox_source(base, psp)
    return sources


def _crash() -> None:
    """PAYMESH_FAULT_CRASH_AFTER_SEND (sandbox mode, tests only): die as SIGKILL would, right
    after a confirmation left and before it was recorded."""

    os._exit(137)


@contextlib.asynccontextmanager
async def nats_bus(core: Core) -> AsyncIterator[tuple[Any, Any]]:
    """The JetStream connection and streams, closed (in-flight publishes flushed) on exit."""
    from paymesh.adapters.nats.bus import Layout, connect, ensure_streams

    assert core.settings.bus is not None
    # After the checkpoint is loaded (core.open): it replaces the engine's features, and what
    # the feed applies must land in the loaded ones.
    nc = await connect(core.settings.bus, name="paymesh", client=core.nc)
    try:
        js = nc.jetstream()
        layout = Layout(
            prefix=core.settings.nats_prefix, ack_wait_seconds=core.settings.nats_ack_wait
        )
        await ensure_streams(js, layout)
        if core.feed is not None:
            await core.feed.start()
        if core.circuit_feed is not None:
            await core.circuit_feed.start()
        yield js, layout
    finally:
        if core.circuit_feed is not None:
            with contextlib.suppress(Exception):
                await core.circuit_feed.close()
        if core.feed is not None:
            with contextlib.suppress(Exception):
                await core.feed.close()
        with contextlib.suppress(Exception):
            await nc.drain()


@dataclass
class ApiProcess:
    """One API process (`paymesh serve`): the core, the services its routes call besides the
    core's, and, in `running`, the background work of its lifetime."""

    core: Core
    webhooks: WebhookService
    reviews: ReviewService
    auth: Authenticator
    limiter: RateLimit
    #: Where merchants' rules also go (on AWS: EventBridge; to a deliverer process).
    rule_mirror: RuleMirror = field(default_factory=NoMirror)
    #: Embedded with PAYMESH_DELIVERER_PROCESS: the process that runs the deliveries.
    deliverer: DelivererProcess | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the core, start the background work; on exit stop it all and close, in
        order."""
        core = self.core
        settings, store, bus, listener = core.settings, core.store, core.bus, core.listener
        await core.open()
        if not settings.uses_postgres:
            # Embedded: this process owns the file, so what a dead one held is free now. With
            # PostgreSQL other live processes hold leases too: they expire on their own.
            # A dead server's deliverer (whatever this server's settings) may still be
            # stopping: it must be gone before what it leased is freed.
            if isinstance(store, SqliteStore):
                await DelivererLock(Path(store.path)).wait_free()
            await store.release_leases()
            await store.release_claims()  # a cut request's retry resumes now, not in 60 s
        if listener:
            await listener.start()
        async with contextlib.AsyncExitStack() as stack:
            tasks = [
                asyncio.create_task(core.checkpoint.run(), name="fraud-checkpoint"),
                asyncio.create_task(Housekeeping(store, utcnow).run_forever(), name="housekeeping"),
            ]
            if settings.uses_postgres:
                tasks.append(
                    asyncio.create_task(RulesWatcher(bus.router, store).run(), name="rules-watcher")
                )
            else:  # scale-out: the workers reconcile
                tasks.append(_reconciling(core))
            if settings.uses_nats:
                # Scale-out: this process only relays its outbox; workers route, deliver and
                # recover.
                from paymesh.adapters.nats.bus import OutboxRelay

                js, layout = await stack.enter_async_context(nats_bus(core))
                relay = OutboxRelay(store, js, layout)
                _relay_own_commits(core, relay)
                tasks.append(asyncio.create_task(relay.run(), name="outbox-relay"))
            else:
                core.wake.append(bus.notify)
                if self.deliverer is not None:
                    # This process routes (and runs the built-ins tried on routing); the
                    # deliverer claims and runs the rest.
                    bus.routed.append(self.deliverer.wake)
                    self.deliverer.start()
                    running_bus = bus.run(deliver=False)
                else:
                    running_bus = bus.run()
                tasks += [
                    asyncio.create_task(running_bus, name="event-bus"),
                    asyncio.create_task(
                        _recover_then_watch(core.reconciler, at_start=not settings.uses_postgres),
                        name="recovery",
                    ),
                ]
            tasks.append(_watched(core, stack))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await bus.stop()
                if self.deliverer is not None:
                    await self.deliverer.stop()
        if listener:
            await listener.stop()
        await core.close()


def build_api(
    settings: Settings,
    core: Core | None = None,
    review_workflow: ReviewWorkflow | None = None,
    rule_mirror: RuleMirror | None = None,
) -> ApiProcess:
    """An API process; `core` replaces the one the settings would build (see build_core).
    On AWS, `review_workflow` hears of review decisions (the Step Functions execution) and
    `rule_mirror` of merchants' rules (EventBridge)."""
    core = core if core is not None else build_core(settings)
    payments = core.payments
    background: set[asyncio.Task[object]] = set()

    async def drive(payment: Payment) -> None:
        try:
            await payments.drive(payment)
        except Exception:  # recovery will try again; this was only to be quicker
            log.exception("driving payment %s after its webhook failed", payment.id)

    def drive_soon(payment: Payment) -> None:
        task = asyncio.get_running_loop().create_task(drive(payment))
        background.add(task)  # a task nobody holds may be collected before it runs
        task.add_done_callback(background.discard)

    webhooks = WebhookService(
        core.store,
        core.connectors,
        utcnow,
        core.on_commit,
        on_processing=drive_soon,
        answers=payments.answers,
    )
    deliverer = None
    if settings.deliverer_process:
        deliverer = DelivererProcess(
            pickle.dumps(deliverer_settings(settings, core.listener)),
            settings.sqlite_path,
            on_events=core.bus.notify,
            release=core.store.release_leases,
        )
        rule_mirror = DelivererRules(deliverer)
    return ApiProcess(
        core=core,
        webhooks=webhooks,
        reviews=ReviewService(
            core.store, payments.psp, payments.writes, utcnow, workflow=review_workflow
        ),
        auth=Authenticator(core.store),
        limiter=_rate_limiter(settings, core.store),
        rule_mirror=rule_mirror if rule_mirror is not None else NoMirror(),
        deliverer=deliverer,
    )


def deliverer_settings(settings: Settings, listener: SandboxListener | None) -> Settings:
    """The settings of an embedded server's deliverer process: the server's, with the
    built-in sandboxes reached at the server's sandbox listener, and no fraud model (its
    engine scores nothing; the server's learns, see `run_deliverer`)."""
    bases: dict[str, Any] = {}
    if listener is not None:
        for psp in settings.sandboxed_psps:
            bases[f"{psp}_api_base"] = listener.psp_url(psp)
        if settings.sms_sandboxed and "twilio" in listener.suite.boxes:
            bases["twilio_api_base"] = f"{listener.url}/sandbox/twilio"
    return replace(settings, deliverer_process=False, fraud_model="none", **bases)


async def run_deliverer(settings: Settings, fd: int) -> None:
    """An embedded server's deliverer process (`paymesh.entrypoints.deliverer`): claims
    and runs the deliveries its server routed, over the same SQLite file, until the line to
    the server (`fd`) closes. The server keeps the fraud engine that learns: the built-ins
    that feed it run as the server routes, and a retry of one here raises its alert but
    teaches this process's engine only."""
    main = asyncio.current_task()
    assert main is not None
    line = ServerLine(fd, on_routed=lambda: None, on_gone=main.cancel)
    lock = DelivererLock(settings.sqlite_path)
    await asyncio.to_thread(lock.hold)
    if line.gone():
        # Its server died while it started, and a new one may have freed the leases since:
        # this one must claim nothing.
        log.warning("the server of this deliverer is gone; stopping")
        return
    core = build_core(settings, with_sandbox=False)
    core.keeps_features = False
    await core.open()
    line.on_routed = core.bus.notify
    core.wake.append(line.events_committed)
    line.start()

    async def rules_first() -> None:
        line.catch_up()  # a rule changed before these deliveries were routed is heard now
        if line.rules_stale:
            core.bus.router.sync(await core.store.rules())
            line.rules_stale = False

    log.info("deliverer running beside its server (pid %d)", os.getppid())
    published = asyncio.create_task(
        _publish_metrics(core.metrics, exposition_file(settings.sqlite_path)),
        name="metrics-publisher",
    )
    try:
        await core.bus.run(route=False, before_starting=rules_first)
    finally:
        line.close()
        await core.bus.stop()
        published.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await published
        await core.close()


async def _publish_metrics(metrics: PaymeshMetrics, path: Path) -> None:
    """A deliverer's counts, where its server's `/metrics` reads them (it serves no HTTP of
    its own): at once (it holds the deliverer lock, so whatever an earlier deliverer wrote
    is replaced by a live one's), every `PUBLISH_SECONDS`, and once more when it stops."""
    try:
        while True:
            try:
                await asyncio.to_thread(publish, metrics.registry, path)
            except OSError as exc:  # a full disk: the deliveries matter more than their count
                log.warning("the deliverer could not publish its metrics: %s", exc)
            await asyncio.sleep(PUBLISH_SECONDS)
    finally:
        with contextlib.suppress(OSError):
            publish(metrics.registry, path)


#: How long the events a process commits stay leased to its own relay, which publishes them
#: within milliseconds: a process that dies first leaves them to the others this long.
#: Well inside JetStream's duplicate window (`Layout.duplicate_window_seconds`).
OWN_RELAY_LEASE_SECONDS = 10.0


def _relay_own_commits(core: Core, relay: OutboxRelay) -> None:
    """The relay takes this process's committed events straight from its PostgreSQL store,
    leased to it as they are written, instead of claiming them back from the table after
    each commit: one round trip fewer a commit, and no envelope read back and decoded.
    What it must still claim (another process's, a dead one's) it finds on its poll."""
    from paymesh.adapters.postgres import PostgresStore

    if isinstance(core.store, PostgresStore):
        core.store.hand_outbox_to(relay.take, OWN_RELAY_LEASE_SECONDS)
    else:
        core.wake.append(relay.notify)


def _rate_limiter(settings: Settings, store: BusBackend) -> RateLimit:
    """Per process when embedded; with PostgreSQL, one budget per key across all processes."""
    if settings.uses_postgres:
        from paymesh.adapters.postgres import PostgresStore
        from paymesh.adapters.postgres.ratelimit import PostgresRateLimiter

        assert isinstance(store, PostgresStore)
        return PostgresRateLimiter(store, settings.rate_limit)
    return RateLimiter(settings.rate_limit)


#: Something a worker runs for its lifetime beside its work, given its core: the entrypoint's
#: `/metrics` listener (passed in, as bootstrap imports no entrypoint).
Alongside = Callable[[Core], contextlib.AbstractAsyncContextManager[None]]


async def run_worker(settings: Settings, alongside: Sequence[Alongside] = ()) -> None:
    """`paymesh worker`: the bus's routing and deliveries (retries, dead letters, the fraud
    stream among the built-in targets), the outbox sweep and recovery, with no HTTP API.
    `alongside` start after the core opens and stop after the work has stopped."""
    core = build_core(settings, with_sandbox=False)
    await core.open()
    async with contextlib.AsyncExitStack() as stack:
        for extra in alongside:
            await stack.enter_async_context(extra(core))
        tasks = [
            asyncio.create_task(core.checkpoint.run(), name="fraud-checkpoint"),
            asyncio.create_task(
                Housekeeping(core.store, utcnow).run_forever(), name="housekeeping"
            ),
            asyncio.create_task(
                RulesWatcher(core.bus.router, core.store).run(), name="rules-watcher"
            ),
            asyncio.create_task(
                _recover_then_watch(core.reconciler, at_start=False), name="recovery"
            ),
            _reconciling(core),
        ]
        dispatcher = None
        if settings.uses_nats:
            from paymesh.adapters.nats.bus import Dispatcher, OutboxRelay

            js, layout = await stack.enter_async_context(nats_bus(core))
            dispatcher = Dispatcher(
                core.store,
                js,
                layout,
                core.bus.router,
                core.bus.targets,
                utcnow,
                retry_base_seconds=settings.bus_retry_base,
                # One worker routes a given event (its message is leased to that worker):
                # these are tried there, and only published when that try did not deliver.
                on_routing=ON_ROUTING,
                start_delays=core.bus.start_delays,
            )
            # The sweep: events an API process committed but died before relaying.
            relay = OutboxRelay(core.store, js, layout, poll_seconds=1.0)
            _relay_own_commits(core, relay)
            tasks += [
                asyncio.create_task(dispatcher.run(), name="dispatcher"),
                asyncio.create_task(relay.run(), name="outbox-sweep"),
            ]
        else:
            core.wake.append(core.bus.notify)
            tasks.append(asyncio.create_task(core.bus.run(), name="event-bus"))
        tasks.append(_watched(core, stack))
        log.info("worker running (bus: %s)", "nats" if settings.uses_nats else "database")
        try:
            await asyncio.gather(*tasks)
        finally:
            if dispatcher:
                dispatcher.closing()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if dispatcher:
                await dispatcher.stop()
            await core.bus.stop()
    await core.close()


def _watched(core: Core, stack: contextlib.AsyncExitStack) -> asyncio.Task[None]:
    """Once a process has started its work: the cycle collector's passes timed (until
    `stack` closes), what the process holds for its life frozen out of them (`serve` and
    `worker`: `Settings.gc_freeze`), and the task that watches the event loop (its lag into
    the metrics, a stall's culprit into the log)."""
    stack.enter_context(core.metrics.gc_pauses)
    if core.settings.gc_freeze:
        log.info("%d objects frozen out of the cycle collector's passes", freeze_startup())
    watch = LoopWatch(
        core.metrics.loop_lag.observe, stall_seconds=core.settings.loop_stall_ms / 1000
    )
    return asyncio.create_task(watch.run(), name="loop-watch")


def _reconciling(core: Core) -> asyncio.Task[None]:
    """The daily reconciliation of each PSP with a report source: in the embedded server,
    and in every worker of a scale-out (each would reach the same result; the last kept
    stands)."""
    job = ReconciliationJob(core.store, core.report_sources, utcnow)
    return asyncio.create_task(job.run_forever(), name="reconciliation")


def recovery_grace(settings: Settings) -> timedelta:
    """How long recovery leaves an unsettled payment to the request working on it. With a
    shared store, never less than the longest another process's inline send may still wait
    on its PSP: recovery's resend of the attempt must not overlap a failover there (see
    `inline_grace`). Alone with its file, the server's driver turns keep them apart."""
    grace = timedelta(seconds=settings.recovery_grace)
    if settings.shared_store:
        grace = max(grace, inline_grace(settings.psp_timeout))
    return grace


async def _recover_then_watch(reconciler: Reconciler, at_start: bool) -> None:
    """`at_start`: an embedded server, alone with its file, drives every unsettled payment at
    once. With other processes live, their requests are still working: only the periodic
    pass, which leaves recent payments alone, runs."""
    if at_start:
        # The server starts listening only after the lifespan's startup, and the built-in
        # sandbox is reached over HTTP on that same port: give it a moment first.
        await asyncio.sleep(0.5)
        try:
            recovered = await reconciler.run_once(grace=timedelta(0))
            if recovered:
                log.info("recovery: drove %d unsettled payments at start", recovered)
        except Exception:
            log.exception("recovery at start failed; the periodic pass will retry")
    await reconciler.run_forever()
