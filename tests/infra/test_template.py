"""What the synthesised template holds: the reference's tables, paymesh's rules verbatim with
a retry policy and a dead-letter queue per target, least-privilege roles, alarms, outputs."""

from __future__ import annotations

import json
from typing import Any

from infra import routing
from infra.naming import QUEUE_OUTPUT_PREFIX
from paymesh.adapters.aws.workflows import retry_definition, review_definition
from paymesh.adapters.dynamodb.tables import TABLES
from paymesh.entrypoints.aws import manifest
from paymesh.entrypoints.aws.manifest import FUNCTIONS, HANDLERS
from paymesh.ports.bus import RetryPolicy
from tests.infra.conftest import PREFIX, named, resources

Template = dict[str, Any]


def _keys(*names: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": name, "KeyType": kind}
        for name, kind in zip(names, ("HASH", "RANGE"), strict=False)
    ]


def _arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _queue(template: Template, name: str) -> str:
    return named(template, "AWS::SQS::Queue", "QueueName", name)[0]


def _statements(template: Template, function: str) -> list[dict[str, Any]]:
    """Every statement of the function's role."""
    _, fn = named(template, "AWS::Lambda::Function", "FunctionName", f"{PREFIX}-{function}")
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def _tables_touched(template: Template, function: str) -> set[str]:
    tables = {
        logical_id: table["Properties"]["TableName"].removeprefix(f"{PREFIX}-")
        for logical_id, table in resources(template, "AWS::DynamoDB::Table").items()
    }
    text = json.dumps(
        [s for s in _statements(template, function) if "dynamodb:GetItem" in _actions(s)]
    )
    return {suffix for logical_id, suffix in tables.items() if f'"{logical_id}"' in text}


# -- data -----------------------------------------------------------------------------------------


def test_transactions_table_is_the_references_with_a_sharded_status_index(
    template: Template,
) -> None:
    _, table = named(template, "AWS::DynamoDB::Table", "TableName", f"{PREFIX}-transactions")
    props = table["Properties"]
    assert props["KeySchema"] == _keys("transactionId")
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert indexes["CustomerIdIndex"]["KeySchema"] == _keys("customerId", "createdAt")
    assert indexes["StatusIndex"]["KeySchema"] == _keys("statusShard", "createdAt")
    assert indexes["StatusIndex"]["Projection"] == {"ProjectionType": "ALL"}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    key = next(iter(resources(template, "AWS::KMS::Key")))
    assert props["SSESpecification"] == {
        "KMSMasterKeyId": _arn_of(key),
        "SSEEnabled": True,
        "SSEType": "KMS",
    }


def test_every_table_spec_is_deployed_with_its_indexes_stream_and_ttl(template: Template) -> None:
    assert len(resources(template, "AWS::DynamoDB::Table")) == len(TABLES)
    for spec in TABLES:
        _, table = named(template, "AWS::DynamoDB::Table", "TableName", spec.name(PREFIX))
        props = table["Properties"]
        assert {i["IndexName"] for i in props.get("GlobalSecondaryIndexes", [])} == {
            i.name for i in spec.indexes
        }
        assert props.get("StreamSpecification", {}).get("StreamViewType") == spec.stream
        assert props.get("TimeToLiveSpecification", {}).get("AttributeName") == spec.ttl_attribute


# -- rules and targets ----------------------------------------------------------------------------


def test_every_default_rule_has_its_pattern_verbatim_on_the_bus(template: Template) -> None:
    bus = next(iter(resources(template, "AWS::Events::EventBus")))
    for rule in routing.default_rules():
        _, deployed = named(template, "AWS::Events::Rule", "Name", f"{PREFIX}-{rule['name']}")
        assert deployed["Properties"]["EventPattern"] == rule["event_pattern"]
        assert deployed["Properties"]["EventBusName"] == {"Ref": bus}


def test_every_target_has_the_rules_retry_policy_and_its_own_dead_letter_queue(
    template: Template,
) -> None:
    planned = {rule.name: rule for rule in routing.rules()}
    rules = resources(template, "AWS::Events::Rule")
    assert len(rules) == len(planned) + len(routing.schedules())
    seen_queues = set()
    for rule in rules.values():
        name = rule["Properties"]["Name"].removeprefix(f"{PREFIX}-")
        targets = rule["Properties"]["Targets"]
        assert targets, name
        for target in targets:
            policy = (
                {t.id: t.retry for t in planned[name].targets}[target["Id"]]
                if name in planned
                else RetryPolicy()
            )
            assert target["RetryPolicy"] == {
                "MaximumRetryAttempts": policy.maximum_retry_attempts,
                "MaximumEventAgeInSeconds": policy.maximum_event_age_seconds,
            }
            queue = _queue(template, f"{PREFIX}-dlq-{name}-{target['Id']}")
            assert target["DeadLetterConfig"] == {"Arn": _arn_of(queue)}
            seen_queues.add(queue)
    assert len(seen_queues) == sum(len(r["Properties"]["Targets"]) for r in rules.values())


def test_a_dead_letter_queue_takes_messages_from_its_rule_only_encrypted_and_over_tls(
    template: Template,
) -> None:
    queue = _queue(template, f"{PREFIX}-dlq-payment-initiated-process")
    rule, _ = named(template, "AWS::Events::Rule", "Name", f"{PREFIX}-payment-initiated")
    (policy,) = [
        p
        for p in resources(template, "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {
        "Action": "sqs:SendMessage",
        "Condition": {"ArnEquals": {"aws:SourceArn": _arn_of(rule)}},
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Resource": _arn_of(queue),
    } in statements
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    assert "KmsMasterKeyId" in template["Resources"][queue]["Properties"]


def _logical_id(template: Template, function: str) -> str:
    return next(
        logical_id
        for logical_id, f in resources(template, "AWS::Lambda::Function").items()
        if f["Properties"]["FunctionName"] == f"{PREFIX}-{function}"
    )


def test_lambda_targets_fail_into_the_same_queue_after_their_async_retries(
    template: Template,
) -> None:
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    functions = resources(template, "AWS::Lambda::Function")
    lambda_targets = [
        target
        for rule in resources(template, "AWS::Events::Rule").values()
        for target in rule["Properties"]["Targets"]
        if target["Arn"].get("Fn::GetAtt", [""])[0] in functions
    ]
    # Merchants' rules are made at run time; their function has its own configuration.
    merchants = configs.pop(_logical_id(template, "deliver_rule_target"))
    assert merchants["MaximumRetryAttempts"] == 2
    assert "merchantrulesdlq" in json.dumps(merchants["DestinationConfig"])
    by_function: dict[str, list[Any]] = {}
    for target in lambda_targets:
        by_function.setdefault(target["Arn"]["Fn::GetAtt"][0], []).append(target)
    assert len(by_function) == len(configs) == 6
    # send_confirmation is the target of two rules; its async failures go to the first's queue.
    assert sorted(len(ts) for ts in by_function.values()) == [1, 1, 1, 1, 1, 2]
    for target in lambda_targets:
        config = configs[target["Arn"]["Fn::GetAtt"][0]]
        first = by_function[target["Arn"]["Fn::GetAtt"][0]][0]
        assert config["DestinationConfig"] == {
            "OnFailure": {"Destination": first["DeadLetterConfig"]["Arn"]}
        }
        assert config["Qualifier"] == "$LATEST"
        assert 0 < config["MaximumRetryAttempts"] <= 2  # Lambda's own ceiling
        assert (
            config["MaximumEventAgeInSeconds"] == target["RetryPolicy"]["MaximumEventAgeInSeconds"]
        )


def test_service_targets_go_to_the_stream_by_customer_and_to_the_state_machines(
    template: Template,
) -> None:
    def target(rule: str) -> dict[str, Any]:
        _, deployed = named(template, "AWS::Events::Rule", "Name", f"{PREFIX}-{rule}")
        (only,) = deployed["Properties"]["Targets"]
        return dict(only)

    stream, _ = named(template, "AWS::Kinesis::Stream", "Name", f"{PREFIX}-fraud")
    review, _ = named(
        template, "AWS::StepFunctions::StateMachine", "StateMachineName", f"{PREFIX}-review"
    )
    retry, _ = named(
        template, "AWS::StepFunctions::StateMachine", "StateMachineName", f"{PREFIX}-retry"
    )
    assert target("fraud-stream")["Arn"] == _arn_of(stream)
    assert target("fraud-stream")["KinesisParameters"] == {
        "PartitionKeyPath": "$.detail.customer_id"
    }
    assert target("high-risk-transaction")["Arn"] == {"Ref": review}
    assert target("payment-failed")["Arn"] == {"Ref": retry}


# -- functions ------------------------------------------------------------------------------------


def test_each_manifest_function_runs_its_handler_traced_with_the_manifest_environment(
    template: Template,
) -> None:
    env_names = {v for k, v in vars(manifest).items() if k.startswith("ENV_")}
    assert len(resources(template, "AWS::Lambda::Function")) == len(FUNCTIONS)
    for function in FUNCTIONS:
        _, fn = named(
            template, "AWS::Lambda::Function", "FunctionName", f"{PREFIX}-{function.name}"
        )
        props = fn["Properties"]
        assert props["Handler"] == f"{HANDLERS}.{function.name}"
        assert props["Runtime"] == "python3.11"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == function.memory_mb
        assert props["Timeout"] == function.timeout_seconds
        variables = props["Environment"]["Variables"]
        assert env_names <= set(variables)
        assert variables[manifest.ENV_TABLE_PREFIX] == PREFIX
        assert variables[manifest.ENV_EVENT_BUS] == f"{PREFIX}-bus"
        log_group = template["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{PREFIX}-{function.name}"


def test_each_function_reaches_exactly_the_tables_its_manifest_entry_lists(
    template: Template,
) -> None:
    for function in FUNCTIONS:
        assert _tables_touched(template, function.name) == set(function.tables), function.name


def test_every_function_that_writes_payments_may_write_their_ledger(template: Template) -> None:
    # A commit that changes a payment books its money in the same TransactWriteItems: without
    # the ledger table in its grants, every such commit of the function would be refused (moto
    # does not check IAM, so only the template can say it).
    writers = [f for f in FUNCTIONS if "transactions" in f.tables]
    assert writers
    for function in writers:
        assert "ledger" in _tables_touched(template, function.name), function.name


def test_the_outbox_relay_may_put_events_and_cannot_touch_the_transactions_table(
    template: Template,
) -> None:
    bus = next(iter(resources(template, "AWS::Events::EventBus")))
    transactions, _ = named(template, "AWS::DynamoDB::Table", "TableName", f"{PREFIX}-transactions")
    statements = _statements(template, "publish_outbox")
    assert {"Action": "events:PutEvents", "Effect": "Allow", "Resource": _arn_of(bus)} in (
        statements
    )
    # Of the transactions table it may only see that it exists (the store checks at start).
    touching = [s for s in statements if transactions in json.dumps(s)]
    assert [_actions(s) for s in touching] == [["dynamodb:DescribeTable"]]
    # And the functions that do not put events cannot.
    assert not any(
        "events:PutEvents" in _actions(s) for s in _statements(template, "process_payment")
    )


def test_a_publisher_may_publish_to_its_topic_only(template: Template) -> None:
    confirmations, topic = named(
        template, "AWS::SNS::Topic", "TopicName", f"{PREFIX}-confirmations.fifo"
    )
    # FIFO: the publisher's deduplication id (the event's) makes a second publish a no-op.
    assert topic["Properties"]["FifoTopic"] is True
    alerts, _ = named(template, "AWS::SNS::Topic", "TopicName", f"{PREFIX}-fraud-alerts")
    publishes = {
        function.name: [
            s["Resource"]
            for s in _statements(template, function.name)
            if "sns:Publish" in _actions(s)
        ]
        for function in FUNCTIONS
    }
    assert publishes.pop("send_confirmation") == [{"Ref": confirmations}]
    assert publishes.pop("score_fraud_stream") == [{"Ref": alerts}]
    assert all(resources == [] for resources in publishes.values())


def test_no_role_has_a_wildcard_action_and_resource_star_only_where_iam_requires_it(
    template: Template,
) -> None:
    unscoped = {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "dynamodb:ListStreams",
    }
    log_delivery = {  # Step Functions' log delivery (the state machines' roles)
        "logs:CreateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "logs:GetLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:UpdateLogDelivery",
    }
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert not any("*" in action for action in _actions(statement)), statement
            if statement["Resource"] == "*":
                assert set(_actions(statement)) <= unscoped | log_delivery, statement


def test_stream_consumers_bisect_retry_and_keep_failed_batches(template: Template) -> None:
    mappings = {
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"]
        for m in resources(template, "AWS::Lambda::EventSourceMapping").values()
    }
    scorer, _ = named(
        template, "AWS::Lambda::Function", "FunctionName", f"{PREFIX}-score_fraud_stream"
    )
    relay, _ = named(template, "AWS::Lambda::Function", "FunctionName", f"{PREFIX}-publish_outbox")
    stream, _ = named(template, "AWS::Kinesis::Stream", "Name", f"{PREFIX}-fraud")
    events_table, _ = named(template, "AWS::DynamoDB::Table", "TableName", f"{PREFIX}-events")
    assert set(mappings) == {scorer, relay}
    assert mappings[scorer]["EventSourceArn"] == _arn_of(stream)
    assert mappings[scorer]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mappings[relay]["EventSourceArn"] == {"Fn::GetAtt": [events_table, "StreamArn"]}
    for function, mapping in ((scorer, mappings[scorer]), (relay, mappings[relay])):
        assert mapping["BisectBatchOnFunctionError"] is True
        assert mapping["MaximumRetryAttempts"] > 0
        assert mapping["StartingPosition"] == "TRIM_HORIZON"
        name = "score_fraud_stream" if function == scorer else "publish_outbox"
        assert mapping["DestinationConfig"] == {
            "OnFailure": {"Destination": _arn_of(_queue(template, f"{PREFIX}-failed-{name}"))}
        }


# -- workflows, API, alarms, outputs --------------------------------------------------------------


def test_state_machines_run_the_workflow_modules_definitions_logged_and_traced(
    template: Template,
) -> None:
    expected = {
        f"{PREFIX}-review": review_definition(f"{PREFIX}-bus", 259_200),
        f"{PREFIX}-retry": retry_definition(f"{PREFIX}-bus", 60),
    }
    for name, definition in expected.items():
        _, machine = named(template, "AWS::StepFunctions::StateMachine", "StateMachineName", name)
        props = machine["Properties"]
        assert json.loads(props["DefinitionString"]) == definition
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["TracingConfiguration"] == {"Enabled": True}


def test_the_http_api_routes_the_manifests_http_triggers_with_access_logs(
    template: Template,
) -> None:
    routes = {
        r["Properties"]["RouteKey"]
        for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    assert routes == {t.detail for f in FUNCTIONS for t in f.triggers if t.kind == "http"}
    (stage,) = resources(template, "AWS::ApiGatewayV2::Stage").values()
    assert "DestinationArn" in stage["Properties"]["AccessLogSettings"]
    integrations = resources(template, "AWS::ApiGatewayV2::Integration").values()
    assert {i["Properties"]["PayloadFormatVersion"] for i in integrations} == {"2.0"}


def test_alarms_watch_every_dead_letter_queue_every_function_and_api_p99(
    template: Template,
) -> None:
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
    }
    queues = {q["Properties"]["QueueName"] for q in resources(template, "AWS::SQS::Queue").values()}
    expected = (
        {f"{q}-depth" for q in queues}
        | {f"{PREFIX}-{f.name}-errors" for f in FUNCTIONS}
        | {f"{PREFIX}-api-p99-latency"}
    )
    assert set(alarms) == expected
    depth = alarms[f"{PREFIX}-dlq-payment-succeeded-confirmation-depth"]
    assert (depth["MetricName"], depth["Threshold"], depth["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    p99 = alarms[f"{PREFIX}-api-p99-latency"]
    assert (p99["MetricName"], p99["ExtendedStatistic"]) == ("Latency", "p99")


def test_outputs_name_what_the_harness_needs_with_one_per_dead_letter_queue(
    template: Template,
) -> None:
    outputs = template["Outputs"]
    assert outputs["TablePrefix"]["Value"] == PREFIX
    for key in (
        "BusName",
        "FraudStreamName",
        "ConfirmationsTopicArn",
        "FraudAlertsTopicArn",
        "ReviewStateMachineArn",
        "RetryStateMachineArn",
        "ApiEndpoint",
    ):
        assert key in outputs
    queue_outputs = [k for k in outputs if k.startswith(QUEUE_OUTPUT_PREFIX)]
    assert len(queue_outputs) == len(resources(template, "AWS::SQS::Queue"))
