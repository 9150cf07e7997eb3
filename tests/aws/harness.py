"""The AWS deployment in moto, and the plumbing moto does not run.

moto keeps the state of every service the stack uses (tables and their streams, the bus and
its rules and targets, queues, topics, the Kinesis stream, state machines, which it even
executes), but it cannot run a Lambda container, so nothing it holds ever invokes a
function. `Cloud` does that part, as AWS would, from what is deployed:

- the events table's stream is read and handed to `publish_outbox` as a DynamoDB Streams
  event (a failed batch is handed over again);
- everything put on the bus reaches a test-only tap queue (an ordinary rule and SQS target,
  which moto does deliver); each event is matched against the deployed rules (their patterns
  as EventBridge holds them, matched by paymesh's EventBridge matcher) and given to each
  target: a Lambda function (retried, then its DeadLetterConfig queue, as EventBridge and
  Lambda's asynchronous invocation would), the Kinesis stream, a state machine, a topic;
- the Kinesis stream is read and handed to `score_fraud_stream` as a Kinesis event; records
  it reports failed are read again from the first of them;
- webhooks the PSP sandboxes send are received on loopback and handed to the `webhooks`
  function as API Gateway HTTP API (payload 2.0) events, as are the test's API calls.

Every call here goes through the harness's own boto3 session; the functions use the
default one, so what they call can be counted apart (benchmarks/aws_cost.py).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, cast

import boto3
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.config import Settings
from paymesh.entrypoints.aws import handlers, manifest
from paymesh.entrypoints.server_thread import serving
from paymesh.rules import compile_pattern
from paymesh.sandbox.suite import SandboxSuite
from tests.support.aws import moto_aws

ACCOUNT = "123456789012"
REGION = "us-east-1"
TAP = "harness-tap"
#: A payment of this amount scores 75 under `fraud_rules`: at or above the alert threshold
#: (70), above the review threshold (70), below the block threshold (80).
REVIEW_AMOUNT = 77_700


class LambdaContext:
    """What a handler's `context` offers that paymesh reads (nothing yet) and a log needs."""

    def __init__(self, function: str) -> None:
        self.function_name = function
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        self.memory_limit_in_mb = 512

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Invocation:
    function: str
    seconds: float
    error: str | None = None


@dataclass
class AwsCall:
    """One AWS request a function made (the harness's own plumbing is not counted)."""

    function: str
    service: str
    operation: str
    params: dict[str, Any]
    response: dict[str, Any]
    #: How long the call took here (moto in this process, not AWS).
    seconds: float = 0.0


class WebhookGate:
    """The API Gateway route the sandboxes' webhooks reach: records them on loopback."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            self.received.append((request.url.path, dict(request.headers.items()), body))
        # Adyen wants this exact body; the others only look at the status.
        return Response("[accepted]", media_type="text/plain")

    def take(self) -> list[tuple[str, dict[str, str], bytes]]:
        with self.lock:
            taken, self.received = self.received, []
        return taken


@contextmanager
def moto_delivers_to_queues_only() -> Iterator[None]:
    """moto delivers a matched event to SQS, CloudWatch Logs and event-bus targets itself,
    and raises NotImplementedError for any other target (Lambda, Kinesis, Step Functions,
    SNS). Those are the harness's to deliver: moto is told to leave rules that have no
    target of its own alone (the tap rule is such a target)."""
    from moto.events.models import Rule

    original = Rule.send_to_targets
    own = ("arn:aws:sqs:", "arn:aws:logs:")

    def send_to_targets(self: Any, *args: Any, **kwargs: Any) -> None:
        if all(t["Arn"].startswith(own) for t in self.targets):
            original(self, *args, **kwargs)

    Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]
    try:
        yield
    finally:
        Rule.send_to_targets = original  # type: ignore[method-assign]


def http_event(
    method: str, path: str, headers: dict[str, str], body: bytes, route: str
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0."""
    raw_path, _, query = path.partition("?")
    now = datetime.now(UTC)
    text = body.decode("utf-8", "replace")
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "paymesh",
            "domainName": "paymesh.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "paymesh",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", "tests"),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Cloud:
    #: Names of what the stack made (infra.deploy_local.Deployment).
    bus: str
    events_table: str
    fraud_stream: str
    confirmations_topic: str
    fraud_alerts_topic: str
    #: Deployed function name -> handler name in paymesh.entrypoints.aws.handlers.
    functions: dict[str, str]
    gate: WebhookGate
    session: Any = field(default_factory=lambda: boto3.Session(region_name=REGION))
    invocations: list[Invocation] = field(default_factory=list)
    #: Attempts a failed asynchronous invocation gets in all (Lambda: 1 + 2 retries).
    attempts: int = 3
    sandbox_url: str = ""
    deployment: Any = None
    #: The function being invoked, while one is.
    running: str | None = None

    def __post_init__(self) -> None:
        c = self.session.client
        self.events, self.sqs, self.sns = c("events"), c("sqs"), c("sns")
        self.kinesis, self.sfn = c("kinesis"), c("stepfunctions")
        self.ddb, self.streams = c("dynamodb"), c("dynamodbstreams")
        self.retries: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
        self._tap()
        self.confirmations = self._inbox(self.confirmations_topic, "harness-confirmations")
        self.alerts = self._inbox(self.fraud_alerts_topic, "harness-alerts")
        self.outbox_iterators = self._table_stream_iterators()
        self.kinesis_iterators = self._kinesis_iterators()

    # -- setting up what only the harness needs ------------------------------------------

    def _tap(self) -> None:
        url = self.sqs.create_queue(QueueName=TAP)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.put_rule(
            Name=TAP,
            EventBusName=self.bus,
            EventPattern=json.dumps(
                {"source": ["payment.service", "fraud.service", "paymesh.workflows"]}
            ),
        )
        self.events.put_targets(
            Rule=TAP, EventBusName=self.bus, Targets=[{"Id": "tap", "Arn": arn}]
        )
        self.tap_url = url

    def _inbox(self, topic_arn: str, name: str) -> str:
        fifo = topic_arn.endswith(".fifo")
        attributes = {"FifoQueue": "true"} if fifo else {}
        url = self.sqs.create_queue(
            QueueName=name + (".fifo" if fifo else ""), Attributes=attributes
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        return str(url)

    def _table_stream_iterators(self) -> dict[str, str]:
        arn = self.ddb.describe_table(TableName=self.events_table)["Table"]["LatestStreamArn"]
        self.outbox_stream_arn = arn
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        return {
            s["ShardId"]: self.streams.get_shard_iterator(
                StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            for s in shards
        }

    def _kinesis_iterators(self) -> dict[str, str]:
        shards = self.kinesis.describe_stream(StreamName=self.fraud_stream)["StreamDescription"][
            "Shards"
        ]
        return {
            s["ShardId"]: self.kinesis.get_shard_iterator(
                StreamName=self.fraud_stream,
                ShardId=s["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            for s in shards
        }

    # -- invoking functions ----------------------------------------------------------------

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call the handler of `function` (its handler name) as Lambda would."""
        handler: Callable[[dict[str, Any], Any], Any] = getattr(handlers, function)
        start = time.perf_counter()
        self.running = function
        try:
            result = handler(event, LambdaContext(function))
        except Exception as exc:
            self.invocations.append(Invocation(function, time.perf_counter() - start, repr(exc)))
            raise
        finally:
            self.running = None
        self.invocations.append(Invocation(function, time.perf_counter() - start))
        return result

    @contextmanager
    def counting_calls(self) -> Iterator[list[AwsCall]]:
        """Record every AWS request the functions make while the block runs."""
        from botocore.client import BaseClient

        calls: list[AwsCall] = []
        original = BaseClient._make_api_call
        cloud = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            start = time.perf_counter()
            response = original(client, operation, params)
            took = time.perf_counter() - start
            service = client.meta.service_model.service_name
            # The function's own thread, or the DynamoDB store's worker thread; not moto's
            # state machine threads (their requests are state transitions, counted apart).
            ours = threading.current_thread() is threading.main_thread() or service == "dynamodb"
            if cloud.running is not None and ours:
                calls.append(AwsCall(cloud.running, service, operation, params, response, took))
            return response

        BaseClient._make_api_call = make_api_call
        try:
            yield calls
        finally:
            BaseClient._make_api_call = original

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        function: str = "api",
        route: str = "ANY /v1/{proxy+}",
    ) -> Reply:
        raw = (
            body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
        )
        sent = {"content-type": "application/json", **(headers or {})}
        answer = self.invoke(function, http_event(method, path, sent, raw, route))
        text = answer.get("body", "")
        if answer.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        try:
            parsed: Any = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Reply(answer["statusCode"], answer.get("headers", {}), parsed)

    # -- the plumbing ----------------------------------------------------------------------

    def api_key(self, merchant: str) -> str:
        """A secret key for `merchant`, made as `paymesh keys create` makes one."""
        from paymesh.service.apikeys import create_key

        env = handlers.environment("api")

        async def create() -> str:
            core = await handlers.core_of(env)
            return await create_key(core.store, merchant, datetime.now(UTC))

        return env.run(create())

    def review_waiting(self, payment_id: str) -> bool:
        """The review workflow's execution for the payment waits with its task token."""
        from paymesh.adapters.aws.reviews import token_name

        env = handlers.environment("api")

        async def kept() -> bool:
            core = await handlers.core_of(env)
            return await core.store.get_blob(token_name(payment_id)) is not None

        return env.run(kept())

    def pump(self, rounds: int = 50, until: Callable[[], bool] | None = None) -> None:
        """Run the plumbing until nothing moves (or `until()` holds)."""
        for _ in range(rounds):
            moved = self.forward_webhooks()
            moved |= self.relay_outbox()
            moved |= self.route_bus()
            moved |= self.feed_fraud_stream()
            moved |= self.run_retries()
            if until is not None and until():
                return
            if not moved:
                if until is None:
                    return
                time.sleep(0.05)  # a sandbox webhook or a state machine still on its way
        if until is not None:
            raise AssertionError("the deployment did not get there")

    def forward_webhooks(self) -> bool:
        taken = self.gate.take()
        for path, headers, body in taken:
            psp = path.rsplit("/", 1)[-1]
            reply = self.invoke(
                "webhooks",
                http_event("POST", f"/webhooks/{psp}", headers, body, "POST /webhooks/{psp}"),
            )
            assert reply["statusCode"] < 500, reply
        return bool(taken)

    def relay_outbox(self) -> bool:
        moved = False
        for shard, iterator in list(self.outbox_iterators.items()):
            answer = self.streams.get_records(ShardIterator=iterator)
            records = answer["Records"]
            if records:
                for record in records:
                    record["eventSourceARN"] = self.outbox_stream_arn
                # A failed batch raises here: the test sees it (Lambda would retry it).
                self.invoke("publish_outbox", {"Records": records})
                moved = True
            self.outbox_iterators[shard] = answer["NextShardIterator"]
        return moved

    def _rules(self) -> list[tuple[dict[str, Any], Any, list[dict[str, Any]]]]:
        rules = []
        for rule in self.events.list_rules(EventBusName=self.bus)["Rules"]:
            if rule["Name"] == TAP or "EventPattern" not in rule:
                continue
            if rule.get("State", "ENABLED") != "ENABLED":
                continue
            targets = self.events.list_targets_by_rule(Rule=rule["Name"], EventBusName=self.bus)[
                "Targets"
            ]
            rules.append((rule, compile_pattern(json.loads(rule["EventPattern"])), targets))
        return rules

    def route_bus(self) -> bool:
        messages = self.sqs.receive_message(
            QueueUrl=self.tap_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return False
        rules = self._rules()
        for message in messages:
            event = json.loads(message["Body"])
            for rule, pattern, targets in rules:
                if pattern.matches(event):
                    for target in targets:
                        self.deliver(rule, target, event)
            self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def deliver(self, rule: dict[str, Any], target: dict[str, Any], event: dict[str, Any]) -> None:
        arn: str = target["Arn"]
        service = arn.split(":")[2]
        if service == "lambda":
            self._invoke_target(1, rule, target, event)
        elif service == "kinesis":
            path = target.get("KinesisParameters", {}).get("PartitionKeyPath", "")
            key = _json_path(event, path) if path else None
            self.kinesis.put_record(
                StreamName=arn.rsplit("/", 1)[-1],
                Data=json.dumps(event).encode(),
                PartitionKey=str(key) if key else event["id"],
            )
        elif service == "states":
            # EventBridge names each execution it starts uniquely.
            self.sfn.start_execution(
                stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(event)
            )
        elif service == "sns":
            self.sns.publish(TopicArn=arn, Message=json.dumps(event))
        else:
            raise AssertionError(f"no delivery to {arn}")

    def _invoke_target(
        self, attempt: int, rule: dict[str, Any], target: dict[str, Any], event: dict[str, Any]
    ) -> None:
        function = self.functions[target["Arn"].rsplit(":", 1)[-1]]
        try:
            self.invoke(function, _transformed(target, event))
        except Exception as exc:
            if attempt < self.attempts:
                self.retries.append((attempt + 1, json.dumps(rule), target, event))
                return
            dlq = target.get("DeadLetterConfig", {}).get("Arn")
            assert dlq, f"{function} failed and its target has no dead-letter queue"
            url = self.sqs.get_queue_url(QueueName=dlq.rsplit(":", 1)[-1])["QueueUrl"]
            # As EventBridge writes a dead letter: the event, and why, in attributes.
            self.sqs.send_message(
                QueueUrl=url,
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "RULE_ARN": {"DataType": "String", "StringValue": rule["Arn"]},
                    "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
                    "ERROR_CODE": {"DataType": "String", "StringValue": "FunctionError"},
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": repr(exc)[:256]},
                },
            )

    def run_retries(self) -> bool:
        due, self.retries = self.retries, []
        for attempt, rule, target, event in due:
            self._invoke_target(attempt, json.loads(rule), target, event)
        return bool(due)

    def feed_fraud_stream(self) -> bool:
        moved = False
        for shard, iterator in list(self.kinesis_iterators.items()):
            answer = self.kinesis.get_records(ShardIterator=iterator)
            records = answer["Records"]
            next_iterator = answer["NextShardIterator"]
            if records:
                moved = True
                result = self.invoke(
                    "score_fraud_stream",
                    {"Records": [_kinesis_record(r, shard, self.fraud_stream) for r in records]},
                )
                failed = result.get("batchItemFailures", [])
                if failed:  # read again from the first failed record
                    next_iterator = self.kinesis.get_shard_iterator(
                        StreamName=self.fraud_stream,
                        ShardId=shard,
                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                        StartingSequenceNumber=failed[0]["itemIdentifier"],
                    )["ShardIterator"]
            self.kinesis_iterators[shard] = next_iterator
        return moved

    # -- what came out ----------------------------------------------------------------------

    def drain(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(
                    {"body": json.loads(m["Body"]), "attributes": m.get("MessageAttributes", {})}
                )
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def as_delivered(put: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """The event EventBridge delivers for a PutEvents entry: its own new id, the AWS
    account, the detail parsed."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": put["DetailType"],
        "source": put["Source"],
        "account": ACCOUNT,
        "time": put["Time"],
        "region": REGION,
        "resources": put["Resources"],
        "detail": json.loads(put["Detail"]),
    }


def _transformed(target: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """The target's input, as EventBridge makes it: the event, or its input transformer's
    template with `<aws.events.event>` (the only variable paymesh's templates use)."""
    transformer = target.get("InputTransformer")
    if not transformer:
        return event
    assert not transformer.get("InputPathsMap"), "the harness renders no input paths"
    rendered = transformer["InputTemplate"].replace("<aws.events.event>", json.dumps(event))
    result: dict[str, Any] = json.loads(rendered)
    return result


def _json_path(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.removeprefix("$.").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _kinesis_record(record: dict[str, Any], shard: str, stream: str) -> dict[str, Any]:
    """A Kinesis record as Lambda hands it to a function."""
    data = record["Data"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": time.time(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/score-fraud-stream",
        "awsRegion": REGION,
        "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}",
    }


# -- a deployment, ready to call ---------------------------------------------------------------


def fraud_rules(path: Path) -> Path:
    """The packaged fraud rules, and one that scores REVIEW_AMOUNT 75."""
    rules = json.loads(
        resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
    )
    rules["rules"].append(
        {
            "name": "test: review this amount",
            "factor": "test_review",
            "weight": 75,
            "override": True,  # at least a review, whatever the learned model scores
            "when": ["amount", "==", REVIEW_AMOUNT],
        }
    )
    path.write_text(json.dumps(rules))
    return path


@contextmanager
def sandboxes(data_dir: Path, webhook_base: str) -> Iterator[str]:
    """The three PSP sandboxes as `paymesh sandbox` runs them: their own loopback server,
    sending webhooks to `webhook_base`/webhooks/{psp}."""
    settings = Settings.from_env(data_dir=data_dir)
    suite = SandboxSuite(settings.sandbox_secrets, webhook_base)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await suite.start()
        try:
            yield
        finally:
            await suite.stop()

    with serving(Starlette(routes=list(suite.mounts()), lifespan=lifespan)) as url:
        yield url


@contextmanager
def deployed(deploy: Callable[[], Any], data_dir: Path) -> Iterator[Cloud]:
    """moto up, the stack deployed into it by `deploy()`, the sandboxes and the webhook gate
    on loopback, and the functions' environment set as the stack sets it."""
    gate = WebhookGate()
    with (
        fake_environment() as env,
        moto_aws(),
        moto_delivers_to_queues_only(),
        serving(gate.app) as gate_url,
        sandboxes(data_dir, gate_url) as sandbox_url,
    ):
        deployment = deploy()
        env.update(
            {
                "PAYMESH_DATABASE": f"dynamodb://{deployment.table_prefix}",
                "PAYMESH_DATA_DIR": str(data_dir),
                "PAYMESH_STRIPE_API_BASE": f"{sandbox_url}/sandbox/stripe",
                "PAYMESH_ADYEN_API_BASE": f"{sandbox_url}/sandbox/adyen",
                "PAYMESH_PAYPAL_API_BASE": f"{sandbox_url}/sandbox/paypal",
                "PAYMESH_FRAUD_RULES": str(fraud_rules(data_dir / "fraud-rules.json")),
                "PAYMESH_RATE_LIMIT": "0",
                manifest.ENV_EVENT_BUS: deployment.bus_name,
                manifest.ENV_CONFIRMATIONS_TOPIC: deployment.confirmations_topic_arn,
                manifest.ENV_FRAUD_ALERTS_TOPIC: deployment.fraud_alerts_topic_arn,
                manifest.ENV_REVIEW_STATE_MACHINE: deployment.review_state_machine_arn,
                manifest.ENV_RETRY_STATE_MACHINE: deployment.retry_state_machine_arn,
                manifest.ENV_FRAUD_STREAM: deployment.fraud_stream_name,
                manifest.ENV_RULE_TARGET_FUNCTION: (
                    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
                    f"{deployment.table_prefix}-deliver_rule_target"
                ),
                manifest.ENV_RULE_DEAD_LETTERS: (
                    f"arn:aws:sqs:{REGION}:{ACCOUNT}:{deployment.table_prefix}-dlq-merchant-rules"
                ),
                # Merchants' HTTP targets in the tests listen on loopback.
                "PAYMESH_TARGET_ALLOWLIST": "127.0.0.1",
            }
        )
        cloud = Cloud(
            bus=deployment.bus_name,
            events_table=f"{deployment.table_prefix}-events",
            fraud_stream=deployment.fraud_stream_name,
            confirmations_topic=deployment.confirmations_topic_arn,
            fraud_alerts_topic=deployment.fraud_alerts_topic_arn,
            functions=deployment.functions,
            gate=gate,
            sandbox_url=sandbox_url,
            deployment=deployment,
        )
        try:
            yield cloud
        finally:
            handlers.reset()


@contextmanager
def fake_environment() -> Iterator[dict[str, str]]:
    """os.environ as it was after the block, whatever was set in it."""
    saved = dict(os.environ)
    try:
        yield cast("dict[str, str]", os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)
