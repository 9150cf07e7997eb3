"""The Lambda handlers: thin translations from an AWS event to the same services the
embedded and scale-out modes run (DESIGN.md, "Three ways to run, one core").

Each is `handler(event, context)`; the CDK stack points each function at one of them
(`manifest.FUNCTIONS`). Each function has its own `Environment` (its loop and its core),
built at its first invocation.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from paymesh.entrypoints.aws import manifest
from paymesh.entrypoints.aws.runtime import Environment, settings_from_env

if TYPE_CHECKING:
    from paymesh.bootstrap import ApiProcess, Core
    from paymesh.ports.bus import Delivery

log = logging.getLogger("paymesh.aws")

ENVIRONMENTS: dict[str, Environment] = {}


def environment(function: str) -> Environment:
    env = ENVIRONMENTS.get(function)
    if env is None:
        env = ENVIRONMENTS[function] = Environment(function)
    return env


def reset() -> None:
    """End every environment (tests: a new deployment gets fresh ones, as after a deploy)."""
    for env in ENVIRONMENTS.values():
        env.close()
    ENVIRONMENTS.clear()


def _now() -> datetime:
    return datetime.now(UTC)


def _client(env: Environment, service: str) -> Any:
    clients: dict[str, Any] = env.state.setdefault("clients", {})
    if service not in clients:
        import boto3

        clients[service] = boto3.client(service)
    return clients[service]


async def core_of(env: Environment) -> Core:
    core: Core | None = env.state.get("core")
    if core is None:
        from paymesh.bootstrap import build_core

        settings = settings_from_env()
        if not settings.uses_dynamodb:
            raise RuntimeError("on AWS, PAYMESH_DATABASE must be dynamodb://PREFIX")
        core = build_core(settings, with_sandbox=False)
        await core.open()
        env.state["core"] = core
        env.state.setdefault("closers", []).append(core.close)
    return core


async def api_of(env: Environment) -> ApiProcess:
    process: ApiProcess | None = env.state.get("api")
    if process is None:
        from paymesh.adapters.aws.reviews import StepFunctionsReviews
        from paymesh.adapters.aws.rules import EventBridgeRules
        from paymesh.bootstrap import build_api

        core = await core_of(env)
        workflow = StepFunctionsReviews(core.store, _client(env, "stepfunctions"))
        rules = EventBridgeRules(
            _client(env, "events"),
            os.environ[manifest.ENV_EVENT_BUS],
            core.settings.dynamodb_prefix,
            os.environ[manifest.ENV_RULE_TARGET_FUNCTION],
            os.environ[manifest.ENV_RULE_DEAD_LETTERS],
        )
        process = env.state["api"] = build_api(
            core.settings, core, review_workflow=workflow, rule_mirror=rules
        )
    return process


def _delivery(function: str, envelope: dict[str, Any]) -> Delivery:
    """What a built-in target is handed besides the event: on AWS, EventBridge keeps the
    attempts, so only the names matter."""
    from paymesh.ports.bus import Delivery, Target

    spec = next(f for f in manifest.FUNCTIONS if f.name == function)
    rule = next((t.detail for t in spec.triggers if t.kind == "rule"), function)
    now = _now()
    return Delivery(
        id=f"aws:{function}:{envelope['id']}",
        event_id=envelope["id"],
        merchant_id=envelope["account"],
        rule=rule,
        target=Target(id=spec.target_id or function, type="builtin", name=function),
        event_time=now,
        created_at=now,
        next_attempt_at=now,
    )


# -- API Gateway (HTTP API, payload v2) -----------------------------------------------------


def _http(function: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        env = environment(function)
        asgi = env.state.get("mangum")
        if asgi is None:
            from mangum import Mangum

            from paymesh.entrypoints.http.asgi import build_app

            process = env.run(api_of(env))
            # No lifespan: the core was opened above, and the bus, recovery and housekeeping
            # that a server's lifespan starts are other functions here.
            app = build_app(process.core.settings, process)
            asgi = env.state["mangum"] = env.call(lambda loop: Mangum(app, lifespan="off"))
        result: dict[str, Any] = env.call(lambda loop: asgi(event, context))
        return result

    handler.__name__ = function
    return handler


api = _http("api")
webhooks = _http("webhooks")


# -- the outbox relay: DynamoDB stream of the events table -> EventBridge --------------------


def publish_outbox(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Puts each new event of the stream batch on the bus, then marks them routed (out of
    the outbox). Raising fails the batch, which Lambda retries (bisecting it): an event may
    be put twice, never lost; its consumers apply it once."""
    from paymesh.adapters.aws.eventbridge import EventBridgePublisher
    from paymesh.adapters.dynamodb import envelope_from_image

    env = environment("publish_outbox")
    envelopes = [
        envelope
        for record in event.get("Records", [])
        if record.get("eventName") == "INSERT"
        for envelope in [envelope_from_image(record["dynamodb"].get("NewImage", {}))]
        if envelope is not None
    ]
    if not envelopes:
        return {"published": 0}
    publisher = env.state.get("publisher")
    if publisher is None:
        publisher = env.state["publisher"] = EventBridgePublisher(
            _client(env, "events"), os.environ[manifest.ENV_EVENT_BUS]
        )
    publisher.publish(envelopes)
    env.run(_mark_routed(env, [e["id"] for e in envelopes]))
    return {"published": len(envelopes)}


async def _mark_routed(env: Environment, event_ids: list[str]) -> None:
    from paymesh.ports.store import Changeset

    core = await core_of(env)
    await core.store.commit(Changeset(routed=event_ids))


# -- EventBridge targets ----------------------------------------------------------------------


def _target(function: str, work: Callable[[Environment, dict[str, Any]], Any]) -> Any:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        from paymesh.adapters.aws.envelopes import envelope

        env = environment(function)
        env.run(work(env, envelope(event)))
        return {"ok": True}

    handler.__name__ = function
    return handler


async def _process_payment(env: Environment, envelope: dict[str, Any]) -> None:
    """A RetryLater ("the inline attempt may still be running") fails the invocation:
    Lambda's asynchronous retries bring the event back later. The core's own built-in, so
    its grace is the one the settings' PSP timeout gives (`inline_grace`)."""
    core = await core_of(env)
    builtin = core.bus.targets.builtins["process_payment"]
    await builtin(envelope, _delivery("process_payment", envelope))


async def _send_confirmation(env: Environment, envelope: dict[str, Any]) -> None:
    from paymesh.adapters.aws.confirmations import SnsConfirmations
    from paymesh.ports.store import AlreadyProcessed, Changeset, Notification
    from paymesh.service import ids

    core = await core_of(env)
    detail = envelope["detail"]
    merchant, payment_id = envelope["account"], detail["payment_id"]
    sent = await core.store.notifications_for_payment(merchant, payment_id)
    if any(n.event_id == envelope["id"] for n in sent):
        return  # this outcome was confirmed already
    notification = Notification(
        id=ids.new_id("ntf"),
        merchant_id=merchant,
        payment_id=payment_id,
        event_id=envelope["id"],
        channel="sns",
        recipient=str(detail.get("customer_id")),
        template=envelope["detail-type"].replace(".", "_"),
        created_at=_now(),
    )
    sns = SnsConfirmations(_client(env, "sns"), os.environ[manifest.ENV_CONFIRMATIONS_TOPIC])
    sns.send(notification, detail)
    # A concurrent delivery may commit first: SNS dropped our publish as its duplicate.
    with contextlib.suppress(AlreadyProcessed):
        await core.store.commit(
            Changeset(
                processed=[("send_confirmation", envelope["id"])], notifications=[notification]
            )
        )


async def _payment_retry(env: Environment, envelope: dict[str, Any]) -> None:
    """The retry state machine waited out the backoff; this makes the attempt."""
    from paymesh.service.handlers import payment_retry as builtin

    core = await core_of(env)
    detail = dict(envelope["detail"])
    detail["attempt"] = int(detail.get("attempt", 0))
    event = {**envelope, "detail": detail}
    retry = builtin(core.payments, _now, base=timedelta(0))
    await retry(event, _delivery("payment_retry", event))


async def _review_opened(env: Environment, envelope: dict[str, Any]) -> None:
    from paymesh.adapters.aws.reviews import keep_token

    core = await core_of(env)
    detail = envelope["detail"]
    await keep_token(core.store, detail["payment_id"], detail["task_token"], _now())


async def _review_timed_out(env: Environment, envelope: dict[str, Any]) -> None:
    """No one decided in time: reject, as a person would have. A review decided meanwhile,
    or a payment that never needed one, is left as it is."""
    from paymesh.domain.review import review_id_for
    from paymesh.service.errors import NotFound, StateConflict

    process = await api_of(env)
    detail = envelope["detail"]
    try:
        await process.reviews.reject(detail["merchant_id"], review_id_for(detail["payment_id"]))
    except (NotFound, StateConflict) as why:
        log.info("review of %s timed out; nothing to reject: %s", detail["payment_id"], why)


process_payment = _target("process_payment", _process_payment)
send_confirmation = _target("send_confirmation", _send_confirmation)
payment_retry = _target("payment_retry", _payment_retry)
review_opened = _target("review_opened", _review_opened)
review_timed_out = _target("review_timed_out", _review_timed_out)


# -- merchants' rules ----------------------------------------------------------------------------


def deliver_rule_target(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One event to one target of a merchant's rule (EventBridge hands over the event and,
    by the rule's input transformer, which rule and target). A failure raises: EventBridge
    and Lambda retry it, then it is a dead letter in the merchant rules' queue."""
    from paymesh.adapters.aws.envelopes import envelope as envelope_of
    from paymesh.ports.bus import Delivery

    env = environment("deliver_rule_target")

    async def deliver() -> str:
        core = await core_of(env)
        merchant, name = event["merchant_id"], event["rule"]
        router = core.bus.router
        rule = router.own(merchant, name)
        if rule is None:  # made since this environment loaded the rules
            router.load(await core.store.rules())
            rule = router.own(merchant, name)
        target = next((t for t in rule.targets if t.id == event["target"]), None) if rule else None
        if rule is None or rule.state != "ENABLED" or target is None:
            return "gone"  # deleted or changed since EventBridge matched it
        paymesh_event = envelope_of(event["event"])
        now = _now()
        delivery = Delivery(
            id=f"aws:{merchant}:{name}:{target.id}:{paymesh_event['id']}",
            event_id=paymesh_event["id"],
            merchant_id=merchant,
            rule=name,
            target=target,
            event_time=now,
            created_at=now,
            next_attempt_at=now,
        )
        await core.bus.targets.send(delivery, paymesh_event)
        return "delivered"

    return {"result": env.run(deliver())}


# -- the fraud stream: Kinesis -> the stream scorer ---------------------------------------------


def score_fraud_stream(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Feeds each record to the stream scorer, in order; at the first failure it stops and
    reports that record (and so the rest of its shard) as failed: Lambda retries from there,
    and the records before it are not seen twice. The learned features are saved after each
    batch, for the API functions' inline scoring to load."""
    from paymesh.adapters.aws.envelopes import envelope

    env = environment("score_fraud_stream")
    records = event.get("Records", [])

    async def score() -> list[dict[str, str]]:
        from paymesh.service.fraud_stream import FraudStream

        core = await core_of(env)
        stream = env.state.get("stream")
        if stream is None:
            stream = env.state["stream"] = FraudStream(core.engine, core.store, _now)
        for index, record in enumerate(records):
            try:
                raw = json.loads(base64.b64decode(record["kinesis"]["data"]))
                event = envelope(raw)
                await stream(event, _delivery("score_fraud_stream", event))
            except Exception:
                log.exception("fraud stream record %s failed", record["kinesis"]["sequenceNumber"])
                return [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in records[index:]]
        await core.checkpoint.save()
        return []

    return {"batchItemFailures": env.run(score())}


# -- schedules --------------------------------------------------------------------------------


def recover_in_flight(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every minute: drive payments left pending or processing past the grace period."""
    env = environment("recover_in_flight")

    async def recover() -> int:
        core = await core_of(env)
        return await core.reconciler.run_once()

    return {"recovered": env.run(recover())}
