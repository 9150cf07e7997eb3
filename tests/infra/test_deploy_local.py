"""The template deployed into moto: the rules with their targets, the queues, tables,
topics, stream and state machines really exist there, as the stack describes them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from infra import routing
from infra.deploy_local import Deployment, deploy
from paymesh.adapters.dynamodb.tables import TABLES
from paymesh.entrypoints.aws.manifest import FUNCTIONS
from tests.infra.conftest import PREFIX, named, resources
from tests.support.aws import moto_aws


@pytest.fixture(scope="module")
def deployed(template: dict[str, Any]) -> Iterator[Deployment]:
    with moto_aws():
        yield deploy(template)


def test_each_rule_is_on_the_bus_with_its_pattern_and_targets(deployed: Deployment) -> None:
    events = boto3.client("events")
    on_bus = {r["Name"]: r for r in events.list_rules(EventBusName=deployed.bus_name)["Rules"]}
    for rule in routing.rules():
        name = f"{PREFIX}-{rule.name}"
        assert json.loads(on_bus[name]["EventPattern"]) == rule.pattern
        targets = events.list_targets_by_rule(Rule=name, EventBusName=deployed.bus_name)
        by_id = {t["Id"]: t for t in targets["Targets"]}
        assert set(by_id) == {t.id for t in rule.targets}
        for planned in rule.targets:
            target = by_id[planned.id]
            assert target["RetryPolicy"] == {
                "MaximumRetryAttempts": planned.retry.maximum_retry_attempts,
                "MaximumEventAgeInSeconds": planned.retry.maximum_event_age_seconds,
            }
            queue = f"{PREFIX}-dlq-{rule.name}-{planned.id}"
            assert target["DeadLetterConfig"]["Arn"].endswith(f":{queue}")
            assert queue in deployed.dead_letter_urls
            if planned.kind == "function":
                # What the harness relies on: the target's ARN names the handler.
                assert deployed.functions[target["Arn"].rsplit(":", 1)[-1]] == planned.function


def test_a_kinesis_and_state_machine_target_deliver_as_their_role(deployed: Deployment) -> None:
    events = boto3.client("events")

    def target(rule: str) -> dict[str, Any]:
        listed = events.list_targets_by_rule(
            Rule=f"{PREFIX}-{rule}", EventBusName=deployed.bus_name
        )
        (only,) = listed["Targets"]
        return dict(only)

    fraud = target("fraud-stream")
    assert fraud["Arn"].endswith(f":stream/{deployed.fraud_stream_name}")
    assert fraud["KinesisParameters"] == {"PartitionKeyPath": "$.detail.customer_id"}
    retry, review = target("payment-failed"), target("high-risk-transaction")
    assert retry["Arn"] == deployed.retry_state_machine_arn
    assert review["Arn"] == deployed.review_state_machine_arn
    iam = boto3.client("iam")
    for delivered in (fraud, retry, review):
        role = iam.get_role(RoleName=delivered["RoleArn"].rsplit("/", 1)[-1])["Role"]
        (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}


def test_the_recovery_schedule_is_on_the_default_bus(deployed: Deployment) -> None:
    events = boto3.client("events")
    (schedule,) = events.list_rules()["Rules"]
    assert (schedule["Name"], schedule["ScheduleExpression"]) == (
        f"{PREFIX}-recover-in-flight-schedule",
        "rate(1 minute)",
    )
    (target,) = events.list_targets_by_rule(Rule=schedule["Name"])["Targets"]
    assert deployed.functions[target["Arn"].rsplit(":", 1)[-1]] == "recover_in_flight"


def test_every_table_exists_with_its_stream_ttl_and_point_in_time_recovery(
    deployed: Deployment,
) -> None:
    ddb = boto3.client("dynamodb")
    for spec in TABLES:
        name = deployed.tables[spec.suffix]
        table = ddb.describe_table(TableName=name)["Table"]
        stream = table.get("StreamSpecification", {})
        assert stream.get("StreamViewType") == spec.stream
        assert {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])} == {
            i.name for i in spec.indexes
        }
        assert table["SSEDescription"]["SSEType"] == "KMS"
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        if spec.ttl_attribute:
            ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": spec.ttl_attribute}
    assert deployed.tables["transactions"] == f"{PREFIX}-transactions"


def test_every_dead_letter_queue_exists_encrypted_and_open_to_its_rule_only(
    deployed: Deployment, template: dict[str, Any]
) -> None:
    sqs = boto3.client("sqs")
    assert len(deployed.dead_letter_urls) == len(resources(template, "AWS::SQS::Queue"))
    for name, url in deployed.dead_letter_urls.items():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["KmsMasterKeyId"].startswith("arn:aws:kms:")
        assert attributes["MessageRetentionPeriod"] == str(14 * 24 * 3600)
        statements = json.loads(attributes["Policy"])["Statement"]
        senders = [s for s in statements if s["Effect"] == "Allow"]
        if name.endswith("-dlq-merchant-rules"):  # any merchant rule, no other rule
            (sender,) = senders
            assert sender["Principal"] == {"Service": "events.amazonaws.com"}
            assert sender["Condition"]["ArnLike"]["aws:SourceArn"].endswith(
                f":rule/{deployed.bus_name}/{deployed.table_prefix}-m-*"
            )
        elif "-dlq-" in name:
            (sender,) = senders
            assert sender["Principal"] == {"Service": "events.amazonaws.com"}
            assert sender["Condition"]["ArnEquals"]["aws:SourceArn"].startswith("arn:aws:events:")
        else:  # a stream consumer's failure queue: its function's role sends, no one else
            assert senders == []


def test_topics_stream_and_api_exist(deployed: Deployment) -> None:
    sns = boto3.client("sns")
    for arn in (deployed.confirmations_topic_arn, deployed.fraud_alerts_topic_arn):
        assert "KmsMasterKeyId" in sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    stream = boto3.client("kinesis").describe_stream_summary(StreamName=deployed.fraud_stream_name)
    assert stream["StreamDescriptionSummary"]["EncryptionType"] == "KMS"
    api = boto3.client("apigatewayv2")
    (deployed_api,) = api.get_apis()["Items"]
    assert deployed.api_endpoint == deployed_api["ApiEndpoint"]
    routes = {r["RouteKey"] for r in api.get_routes(ApiId=deployed_api["ApiId"])["Items"]}
    assert routes == {t.detail for f in FUNCTIONS for t in f.triggers if t.kind == "http"}


def test_state_machines_hold_the_templates_asl_and_run(
    deployed: Deployment, template: dict[str, Any]
) -> None:
    sfn = boto3.client("stepfunctions")
    for arn, name in (
        (deployed.review_state_machine_arn, f"{PREFIX}-review"),
        (deployed.retry_state_machine_arn, f"{PREFIX}-retry"),
    ):
        _, machine = named(template, "AWS::StepFunctions::StateMachine", "StateMachineName", name)
        described = sfn.describe_state_machine(stateMachineArn=arn)
        assert json.loads(described["definition"]) == json.loads(
            machine["Properties"]["DefinitionString"]
        )
        assert described["loggingConfiguration"]["level"] == "ALL"
        assert described["tracingConfiguration"] == {"enabled": True}
    # A retry past the schedule's last attempt ends at once, without putting an event.
    execution = sfn.start_execution(
        stateMachineArn=deployed.retry_state_machine_arn,
        input=json.dumps({"detail": {"attempt": 99, "payment_id": "pay_1"}}),
    )["executionArn"]
    deadline = time.monotonic() + 10
    while (status := sfn.describe_execution(executionArn=execution)["status"]) == "RUNNING":
        assert time.monotonic() < deadline, "the execution did not finish"
        time.sleep(0.05)
    assert status == "SUCCEEDED"


def test_functions_alarms_and_async_configs_exist_and_the_pollers_are_left_to_the_tests(
    deployed: Deployment, template: dict[str, Any]
) -> None:
    lambda_ = boto3.client("lambda")
    assert set(deployed.functions) == {f"{PREFIX}-{f.name}" for f in FUNCTIONS}
    for name, handler in deployed.functions.items():
        config = lambda_.get_function_configuration(FunctionName=name)
        assert config["Handler"] == f"paymesh.entrypoints.aws.handlers.{handler}"
    invoke = lambda_.get_function_event_invoke_config(FunctionName=f"{PREFIX}-send_confirmation")
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"].endswith(
        f":{PREFIX}-dlq-payment-succeeded-confirmation"
    )
    alarms = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert len(alarms) == len(resources(template, "AWS::CloudWatch::Alarm"))
    assert set(deployed.not_deployed) == set(resources(template, "AWS::Lambda::EventSourceMapping"))
    assert lambda_.list_event_source_mappings()["EventSourceMappings"] == []
