"""The Lambda functions of `paymesh.entrypoints.aws.manifest.FUNCTIONS`: one role each with
exactly what its manifest entry lists (its `tables`, its `uses`, what its triggers read), its
own log group, X-Ray tracing, the manifest's environment; and the triggers that are not the
bus's or the API's (the outbox's table stream, the fraud stream, the recovery schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, ArnFormat, Duration, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.data import Data
from infra.encryption import via
from infra.naming import Names
from infra.paths import SOURCE
from infra.queues import dead_letter_queue, send_to
from paymesh.adapters.dynamodb.tables import TableSpec
from paymesh.entrypoints.aws import manifest
from paymesh.entrypoints.aws.manifest import FUNCTIONS, HANDLERS, Function

_NOT_CODE = ["**/__pycache__", "**/*.pyc", "*.egg-info", "**/.DS_Store"]

#: paymesh is tested on Python 3.11 (pyproject's requires-python, CI): the functions run
#: what the tests run.
RUNTIME = lambda_.Runtime.PYTHON_3_11

#: Every item operation the store makes (TransactWriteItems is authorised per item as
#: PutItem/UpdateItem/DeleteItem/ConditionCheckItem). No Scan: the store never scans.
TABLE_ACTIONS = [
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]
#: Lambda's poller reads a stream as the function's role.
TABLE_STREAM_ACTIONS = [
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
]
KINESIS_READ_ACTIONS = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
    "kinesis:SubscribeToShard",
]

#: A stream consumer's batch: retried this many times (bisected on each error, so one bad
#: record is isolated), then described in its failure queue.
STREAM_RETRY_ATTEMPTS = 10


@dataclass(frozen=True)
class Services:
    """What the functions are given names of and may be granted."""

    data: Data
    key: kms.IKey
    bus: events.IEventBus
    fraud_stream: kinesis.IStream
    confirmations: sns.ITopic
    fraud_alerts: sns.ITopic
    review: sfn.IStateMachine
    retry: sfn.IStateMachine


class Functions(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names, services: Services) -> None:
        super().__init__(scope, id)
        self.names = names
        self.services = services
        #: By manifest name.
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        #: Stream consumers' failure queues, by function.
        self.failed_batches: dict[str, sqs.Queue] = {}
        stack = Stack.of(self)
        #: Merchants' rules, made at run time by the api function: all named
        #: `<prefix>-m-...` on the bus (paymesh.adapters.aws.rules).
        self.merchant_rules_arn = stack.format_arn(
            service="events", resource="rule", resource_name=f"{names.bus}/{names.prefix}-m-*"
        )
        self.merchant_dead_letters = dead_letter_queue(
            self,
            "merchant-rules-dlq",
            name=names.dead_letters("merchant", "rules"),
            key=services.key,
            holds="every merchant rule's targets",
        )
        self.merchant_dead_letters.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["sqs:SendMessage"],
                resources=[self.merchant_dead_letters.queue_arn],
                conditions={"ArnLike": {"aws:SourceArn": self.merchant_rules_arn}},
            )
        )
        self.deliver_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=names.function("deliver_rule_target"),
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        code = lambda_.Code.from_asset(str(SOURCE), exclude=_NOT_CODE)
        for function in FUNCTIONS:
            self._function(function, code)

    def environment(self) -> dict[str, str]:
        s, names = self.services, self.names
        return {
            "PAYMESH_DATABASE": f"dynamodb://{names.prefix}",
            manifest.ENV_TABLE_PREFIX: names.prefix,
            manifest.ENV_EVENT_BUS: names.bus,
            manifest.ENV_FRAUD_STREAM: names.fraud_stream,
            manifest.ENV_CONFIRMATIONS_TOPIC: s.confirmations.topic_arn,
            manifest.ENV_FRAUD_ALERTS_TOPIC: s.fraud_alerts.topic_arn,
            manifest.ENV_REVIEW_STATE_MACHINE: s.review.state_machine_arn,
            manifest.ENV_RETRY_STATE_MACHINE: s.retry.state_machine_arn,
            manifest.ENV_RULE_TARGET_FUNCTION: self.deliver_arn,
            manifest.ENV_RULE_DEAD_LETTERS: self.merchant_dead_letters.queue_arn,
        }

    def _function(self, function: Function, code: lambda_.Code) -> None:
        name = self.names.function(function.name)
        log_group = logs.LogGroup(
            self,
            f"{function.name}-logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=logs.RetentionDays.ONE_YEAR,
        )
        role = iam.Role(
            self,
            f"{function.name}-role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{name}: {function.description}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        for statement in self._access(function):
            role.add_to_policy(statement)
        fn = lambda_.Function(
            self,
            function.name,
            function_name=name,
            description=function.description,
            runtime=RUNTIME,
            handler=f"{HANDLERS}.{function.name}",
            code=code,
            memory_size=function.memory_mb,
            timeout=Duration.seconds(function.timeout_seconds),
            environment=self.environment(),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
        )
        self.functions[function.name] = fn
        self.roles[function.name] = role
        for trigger in function.triggers:
            if trigger.kind == "table-stream":
                source = self.services.data.stream_arn(trigger.detail)
                # The relay fails the whole batch (bisected on retry): its handler raises.
                self._stream_consumer(function, fn, role, source, report_failures=False)
            elif trigger.kind == "kinesis":
                source = self.services.fraud_stream.stream_arn
                self._stream_consumer(function, fn, role, source, report_failures=True)
            elif trigger.kind == "merchant-rules":
                self._merchant_rules_target(function, fn, role)
        Validations.of(fn).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Python 3.11 on purpose: it is the version paymesh is tested on"
                " (requires-python, CI); a runtime the tests never ran is a deployment risk."
                " Moving up is a change of that version, not of the stack.",
            )
        )
        if "events:rules" in function.uses:
            rules = f"rule/{self.names.bus}/{self.names.prefix}-m-*"
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:events:<AWS::Region>:"
                    f"<AWS::AccountId>:{rules}]",
                    reason="Merchants make their rules through the API at run time, so no rule"
                    " can be named here: the grant is the merchant-rule name prefix on this bus"
                    " only, never the stack's own rules.",
                )
            )
        wildcard = "xray:PutTraceSegments and xray:PutTelemetryRecords (X-Ray tracing)"
        if any(t.kind == "table-stream" for t in function.triggers):
            wildcard += " and dynamodb:ListStreams (Lambda's stream poller)"
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=f"Resource * only for {wildcard}, which support no resource-level"
                " permissions; every other statement names its table, index, stream, topic,"
                " queue, state machine or key.",
            )
        )

    def _access(self, function: Function) -> list[iam.PolicyStatement]:
        s = self.services
        statements = []
        for suffix in function.tables:
            statements.append(
                iam.PolicyStatement(
                    actions=TABLE_ACTIONS,
                    resources=_table_and_indexes(s.data.tables[suffix], s.data.specs[suffix]),
                )
            )
        # The store checks at start that every table of the deployment exists (a wrong prefix
        # fails the cold start, not some later request): that is metadata, no item.
        untouched = [suffix for suffix in s.data.tables if suffix not in function.tables]
        if function.tables and untouched:
            statements.append(
                iam.PolicyStatement(
                    actions=["dynamodb:DescribeTable"],
                    resources=[s.data.tables[suffix].table_arn for suffix in untouched],
                )
            )
        # The key through DynamoDB: the tables' items, and the stream records of a table
        # the function is triggered by.
        if function.tables:
            statements.append(
                via(
                    s.key,
                    "dynamodb",
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKey",
                )
            )
        for trigger in function.triggers:
            if trigger.kind != "table-stream":
                continue
            statements.append(
                iam.PolicyStatement(
                    actions=TABLE_STREAM_ACTIONS, resources=[s.data.stream_arn(trigger.detail)]
                )
            )
            statements.append(
                iam.PolicyStatement(actions=["dynamodb:ListStreams"], resources=["*"])
            )
            if not function.tables:
                statements.append(via(s.key, "dynamodb", "kms:Decrypt"))
        for use in function.uses:
            statements.extend(self._use(use))
        return statements

    def _use(self, use: str) -> list[iam.PolicyStatement]:
        s = self.services
        match use:
            case "events:put":
                return [
                    iam.PolicyStatement(
                        actions=["events:PutEvents"], resources=[s.bus.event_bus_arn]
                    )
                ]
            case "kinesis:put":
                return [
                    iam.PolicyStatement(
                        actions=["kinesis:PutRecord", "kinesis:PutRecords"],
                        resources=[s.fraud_stream.stream_arn],
                    )
                ]
            case "kinesis:read":
                return [
                    iam.PolicyStatement(
                        actions=KINESIS_READ_ACTIONS, resources=[s.fraud_stream.stream_arn]
                    )
                ]
            case "sns:confirmations" | "sns:fraud-alerts":
                topic = s.confirmations if use == "sns:confirmations" else s.fraud_alerts
                return [
                    iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]),
                    via(s.key, "sns", "kms:GenerateDataKey", "kms:Decrypt"),
                ]
            case "events:rules":
                return [
                    iam.PolicyStatement(
                        actions=[
                            "events:PutRule",
                            "events:PutTargets",
                            "events:RemoveTargets",
                            "events:DeleteRule",
                            "events:ListTargetsByRule",
                        ],
                        resources=[self.merchant_rules_arn],
                    )
                ]
            case "states:review":
                return [
                    iam.PolicyStatement(
                        actions=[
                            "states:StartExecution",
                            "states:SendTaskSuccess",
                            "states:SendTaskFailure",
                            "states:SendTaskHeartbeat",
                        ],
                        resources=[s.review.state_machine_arn],
                    )
                ]
        raise ValueError(f"manifest use {use!r}: the stack does not know what it grants")

    def _merchant_rules_target(
        self, function: Function, fn: lambda_.Function, role: iam.Role
    ) -> None:
        """Invoked by any merchant's rule (they are made at run time, so the permission names
        their pattern), retried asynchronously, then a dead letter in their queue."""
        fn.add_permission(
            "merchant-rules-invoke",
            principal=iam.ServicePrincipal("events.amazonaws.com"),
            source_arn=self.merchant_rules_arn,
        )
        for statement in send_to(self.merchant_dead_letters, self.services.key):
            role.add_to_policy(statement)
        config = lambda_.CfnEventInvokeConfig(
            self,
            f"{function.name}-async",
            function_name=fn.function_name,
            qualifier="$LATEST",
            maximum_retry_attempts=2,
            maximum_event_age_in_seconds=3600,
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(
                    destination=self.merchant_dead_letters.queue_arn
                )
            ),
        )
        config.node.add_dependency(role)

    def _stream_consumer(
        self,
        function: Function,
        fn: lambda_.Function,
        role: iam.Role,
        source_arn: str,
        *,
        report_failures: bool,
    ) -> None:
        """A stream event source: batches bisected on error and retried, then described in
        a failure queue (for a stream, the batch's shard and sequence numbers, not its
        records: the outbox keeps an unpublished event in `OutboxIndex`, the stream keeps
        its records for the retention period). `report_failures`: the function reports the
        records that failed (`batchItemFailures`), and only those are retried."""
        queue = dead_letter_queue(
            self,
            f"{function.name}-failed",
            name=self.names.failed_batches(function.name),
            key=self.services.key,
            holds=f"{function.name}'s stream batches",
        )
        for statement in send_to(queue, self.services.key):
            role.add_to_policy(statement)
        mapping = lambda_.CfnEventSourceMapping(
            self,
            f"{function.name}-source",
            function_name=fn.function_name,
            event_source_arn=source_arn,
            # From the oldest record kept: nothing committed before the mapping existed is
            # skipped.
            starting_position="TRIM_HORIZON",
            batch_size=100,
            maximum_batching_window_in_seconds=1,
            bisect_batch_on_function_error=True,
            maximum_retry_attempts=STREAM_RETRY_ATTEMPTS,
            function_response_types=["ReportBatchItemFailures"] if report_failures else None,
            destination_config=lambda_.CfnEventSourceMapping.DestinationConfigProperty(
                on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(
                    destination=queue.queue_arn
                )
            ),
        )
        # Lambda checks the role can read the stream when the mapping is created.
        mapping.node.add_dependency(role)
        self.failed_batches[function.name] = queue


def _table_and_indexes(table: dynamodb.ITable, spec: TableSpec) -> list[str]:
    """The table and each of its indexes by name: no `index/*`."""
    return [table.table_arn, *(f"{table.table_arn}/index/{i.name}" for i in spec.indexes)]
