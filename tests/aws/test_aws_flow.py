"""The whole flow on the AWS deployment, in moto: API Gateway -> api function -> PSP sandbox
-> webhook function -> DynamoDB -> stream -> EventBridge rules -> targets -> SNS, Kinesis,
Step Functions. No network beyond loopback, no credentials (see tests/aws/harness.py for
what plays the parts moto cannot run)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from typer.testing import CliRunner

from paymesh.adapters.aws.dead_letters import SqsDeadLetters
from paymesh.entrypoints import cli
from paymesh.entrypoints.aws import handlers, manifest
from tests.aws.conftest import PREFIX
from tests.aws.harness import REVIEW_AMOUNT, Cloud, Reply, as_delivered


def pay(
    cloud: Cloud, key: str, amount: int, method: str = "pm_card_visa", **extra: Any
) -> tuple[Reply, dict[str, str]]:
    headers = {"authorization": f"Bearer {key}", "idempotency-key": str(uuid.uuid4())}
    body = {
        "amount": amount,
        "currency": "usd",
        "payment_method": method,
        "customer_id": f"cus_{uuid.uuid4().hex[:8]}",
        **extra,
    }
    return cloud.http("POST", "/v1/payments", body, headers), {"body": json.dumps(body), **headers}


def confirmations(cloud: Cloud, payment_id: str) -> list[dict[str, Any]]:
    return [
        m["body"] for m in cloud.drain(cloud.confirmations) if m["body"]["payment_id"] == payment_id
    ]


def timeline(cloud: Cloud, key: str, payment_id: str) -> list[str]:
    reply = cloud.http(
        "GET", f"/v1/payments/{payment_id}/events", headers={"authorization": f"Bearer {key}"}
    )
    assert reply.status == 200, reply
    return [e["detail-type"] for e in reply.body["data"]]


def at_stripe(cloud: Cloud, payment_id: str) -> list[dict[str, Any]]:
    """The Stripe sandbox's ledger rows for the payment: one per payment intent made."""
    rows: list[dict[str, Any]] = httpx.get(
        f"{cloud.sandbox_url}/sandbox/stripe/_ledger", params={"reference": payment_id}
    ).json()["payments"]
    return rows


def test_a_payment_runs_through_every_service_and_is_confirmed_once(cloud: Cloud) -> None:
    key = cloud.api_key("m_aws")
    created, sent = pay(cloud, key, 2_000)
    assert created.status == 201, created
    payment = created.body
    assert (payment["status"], payment["amount"], payment["currency"]) == ("succeeded", 2000, "usd")

    # The same request again: the stored answer, and no second charge.
    again = cloud.http(
        "POST",
        "/v1/payments",
        json.loads(sent["body"]),
        {"authorization": sent["authorization"], "idempotency-key": sent["idempotency-key"]},
    )
    assert (again.status, again.body) == (200, payment)
    assert again.headers.get("idempotent-replayed") == "true"
    [row] = at_stripe(cloud, payment["id"])
    assert (row["amount_captured"], row["currency"]) == (2000, "usd")

    cloud.pump()
    sent_out = confirmations(cloud, payment["id"])
    assert len(sent_out) == 1
    assert (sent_out[0]["amount"], sent_out[0]["currency"]) == (2000, "usd")
    assert sent_out[0]["template"] == "payment_succeeded"
    assert timeline(cloud, key, payment["id"])[:2] == ["payment.initiated", "payment.succeeded"]
    functions = {i.function for i in cloud.invocations}
    assert {"api", "publish_outbox", "process_payment", "send_confirmation"} <= functions
    assert "score_fraud_stream" in functions  # the events reached Kinesis and its consumer


def test_a_redelivered_outcome_is_not_confirmed_twice(cloud: Cloud) -> None:
    key = cloud.api_key("m_aws")
    payment = pay(cloud, key, 1_500)[0].body
    cloud.pump()
    assert len(confirmations(cloud, payment["id"])) == 1
    # EventBridge delivers at least once: the same event again, as it would arrive.
    succeeded = _bus_event(cloud, payment["id"], "payment.succeeded")
    cloud.invoke("send_confirmation", succeeded)
    cloud.pump()
    assert confirmations(cloud, payment["id"]) == []


def _bus_event(cloud: Cloud, payment_id: str, detail_type: str) -> dict[str, Any]:
    """The event as EventBridge delivers it: the stored envelope, put through the bus's
    translation (paymesh's id and merchant carried in the detail)."""
    from paymesh.adapters.aws.envelopes import entry

    env = handlers.environment("api")

    async def stored() -> dict[str, Any]:
        core = await handlers.core_of(env)
        payment = await core.store.get_payment(payment_id)
        assert payment is not None
        events = await core.store.events_for_payment(payment.merchant_id, payment_id)
        return next(e.envelope for e in events if e.type == detail_type)

    return as_delivered(entry(env.run(stored()), cloud.bus))


def test_a_declined_payment_fails_and_is_confirmed_once_as_failed(cloud: Cloud) -> None:
    key = cloud.api_key("m_aws")
    reply = pay(cloud, key, 3_100, method="pm_card_chargeDeclined")[0]
    assert reply.status == 402, reply
    payment_id = reply.body["error"]["payment_id"]
    cloud.pump()
    # A decline no retry follows is an outcome the customer is told of (customer-confirmation).
    assert [c["template"] for c in confirmations(cloud, payment_id)] == ["payment_failed"]
    got = cloud.http(
        "GET", f"/v1/payments/{payment_id}", headers={"authorization": f"Bearer {key}"}
    ).body
    assert got["status"] == "failed" and got["failure"]["code"] == "card_declined"
    [row] = at_stripe(cloud, payment_id)
    assert not row["charged"]
    # card_declined is not retryable: the retry state machine never started for it.
    executions = cloud.sfn.list_executions(
        stateMachineArn=cloud.deployment.retry_state_machine_arn
    )["executions"]
    assert all(payment_id not in _input(cloud, e) for e in executions)


def _input(cloud: Cloud, execution: dict[str, Any]) -> str:
    return str(cloud.sfn.describe_execution(executionArn=execution["executionArn"])["input"])


def test_a_high_score_raises_one_fraud_alert_through_sns(cloud: Cloud) -> None:
    key = cloud.api_key("m_aws")
    reply = pay(cloud, key, REVIEW_AMOUNT)[0]
    assert reply.status == 201, reply
    payment = reply.body
    assert payment["fraud"]["score"] >= 70
    cloud.pump()
    alerts = [
        m["body"]
        for m in cloud.drain(cloud.alerts)
        if m["body"].get("detail", {}).get("payment_id") == payment["id"]
    ]
    assert len(alerts) == 1
    assert alerts[0]["detail-type"] == "fraud.alert"
    assert alerts[0]["detail"]["reason"] == "high_score"


def test_a_review_waits_in_step_functions_and_approval_captures_once(cloud: Cloud) -> None:
    key = cloud.api_key("m_aws")
    payment = pay(cloud, key, REVIEW_AMOUNT)[0].body
    assert payment["status"] == "requires_capture" and payment["review"]["status"] == "open"
    review_arn = cloud.deployment.review_state_machine_arn

    cloud.pump(until=lambda: cloud.review_waiting(payment["id"]))
    execution = next(
        e
        for e in cloud.sfn.list_executions(stateMachineArn=review_arn)["executions"]
        if payment["id"] in _input(cloud, e)
    )
    assert execution["status"] == "RUNNING"

    approved = cloud.http(
        "POST",
        f"/v1/reviews/{payment['review']['id']}/approve",
        headers={"authorization": f"Bearer {key}"},
    )
    assert approved.status == 200, approved
    assert approved.body["status"] == "approved"

    def ended() -> bool:
        status = cloud.sfn.describe_execution(executionArn=execution["executionArn"])["status"]
        return bool(status != "RUNNING")

    cloud.pump(until=ended)
    described = cloud.sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["decision"]["decision"] == "approved"
    got = cloud.http(
        "GET", f"/v1/payments/{payment['id']}", headers={"authorization": f"Bearer {key}"}
    ).body
    assert got["status"] == "succeeded" and got["amount_captured"] == REVIEW_AMOUNT
    [row] = at_stripe(cloud, payment["id"])
    assert row["amount_captured"] == REVIEW_AMOUNT


def test_a_failing_target_dead_letters_to_sqs_and_a_redrive_delivers_it_once(
    cloud: Cloud, monkeypatch: Any
) -> None:
    key = cloud.api_key("m_dlq")
    # Confirmations cannot be sent: the topic is wrong, so every attempt fails.
    good_topic = cloud.confirmations_topic
    monkeypatch.setenv(manifest.ENV_CONFIRMATIONS_TOPIC, good_topic + "-gone")
    payment = pay(cloud, key, 2_500)[0].body
    cloud.pump()
    letters = SqsDeadLetters(cloud.sqs, cloud.deployment.table_prefix, _redrive_into(cloud))
    dead = [d for d in letters.letters("m_dlq") if d.detail_type == "payment.succeeded"]
    assert len(dead) == 1
    assert dead[0].rule.endswith("payment-succeeded")
    failures = [i for i in cloud.invocations if i.function == "send_confirmation" and i.error]
    assert len(failures) >= cloud.attempts
    # `paymesh dlq list` reads the same queues.
    listed = CliRunner().invoke(
        cli.app,
        ["dlq", "list", "--merchant", "m_dlq", "--database", f"dynamodb://{PREFIX}"],
    )
    assert listed.exit_code == 0, listed.output
    assert dead[0].id in listed.output and "payment.succeeded" in listed.output

    monkeypatch.setenv(manifest.ENV_CONFIRMATIONS_TOPIC, good_topic)
    assert letters.redrive("m_dlq", dead[0].id)
    assert not letters.redrive("m_dlq", dead[0].id)  # once
    cloud.pump()
    assert len(confirmations(cloud, payment["id"])) == 1
    assert [d for d in letters.letters("m_dlq") if d.id == dead[0].id] == []


def _redrive_into(cloud: Cloud) -> Any:
    def invoke(target_arn: str, event: dict[str, Any]) -> None:
        cloud.invoke(cloud.functions[target_arn.rsplit(":", 1)[-1]], event)

    return invoke


def test_the_fraud_stream_reports_the_first_bad_record_and_everything_after_it(
    cloud: Cloud,
) -> None:
    import base64

    key = cloud.api_key("m_aws")
    payment = pay(cloud, key, 1_200)[0].body
    good = _bus_event(cloud, payment["id"], "payment.succeeded")

    def record(data: bytes, seq: str) -> dict[str, Any]:
        return {
            "kinesis": {
                "partitionKey": "cus",
                "sequenceNumber": seq,
                "data": base64.b64encode(data).decode(),
            },
            "eventSource": "aws:kinesis",
        }

    answer = cloud.invoke(
        "score_fraud_stream",
        {
            "Records": [
                record(json.dumps(good).encode(), "101"),
                record(b"{not json", "102"),
                record(json.dumps(good).encode(), "103"),
            ]
        },
    )
    assert answer == {"batchItemFailures": [{"itemIdentifier": "102"}, {"itemIdentifier": "103"}]}


def test_a_review_no_one_decides_times_out_and_rejects_the_payment(cloud: Cloud) -> None:
    arn = cloud.deployment.review_state_machine_arn
    deployed = cloud.sfn.describe_state_machine(stateMachineArn=arn)
    definition = json.loads(deployed["definition"])
    # The deployed workflow, with its wait cut from days to a second.
    definition["States"]["AwaitDecision"]["TimeoutSeconds"] = 1
    cloud.sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))
    try:
        key = cloud.api_key("m_aws")
        payment = pay(cloud, key, REVIEW_AMOUNT)[0].body
        assert payment["review"]["status"] == "open"

        def rejected() -> bool:
            got = cloud.http(
                "GET", f"/v1/payments/{payment['id']}", headers={"authorization": f"Bearer {key}"}
            ).body
            return bool(got["review"]["status"] == "rejected")

        cloud.pump(rounds=200, until=rejected)
    finally:
        cloud.sfn.update_state_machine(stateMachineArn=arn, definition=deployed["definition"])
    got = cloud.http(
        "GET", f"/v1/payments/{payment['id']}", headers={"authorization": f"Bearer {key}"}
    ).body
    assert got["status"] == "canceled" and got["amount_captured"] == 0
    [row] = at_stripe(cloud, payment["id"])
    assert not row["charged"]
    assert any(i.function == "review_timed_out" and i.error is None for i in cloud.invocations)


def test_a_psp_outage_is_retried_on_the_step_functions_schedule_into_one_charge(
    cloud: Cloud,
) -> None:
    arn = cloud.deployment.retry_state_machine_arn
    deployed = cloud.sfn.describe_state_machine(stateMachineArn=arn)
    definition = json.loads(deployed["definition"])
    waits = {n: s["Seconds"] for n, s in definition["States"].items() if s["Type"] == "Wait"}
    assert waits == {"Wait1": 60, "Wait2": 120, "Wait3": 240, "Wait4": 480}  # as deployed
    for name in waits:  # the deployed schedule, with its waits cut to nothing
        definition["States"][name]["Seconds"] = 0
    cloud.sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))
    stripe = f"{cloud.sandbox_url}/sandbox/stripe/_config"
    try:
        key = cloud.api_key("m_aws")
        httpx.put(stripe, json={"rate_limit_rate": 1.0})  # 429: Stripe did nothing
        # Named PSP: no failover to another, so the retry schedule is what brings it through.
        reply = pay(cloud, key, 4_200, connector="stripe")[0]
        assert reply.status == 503, reply
        payment_id = reply.body["error"]["payment_id"]
        httpx.put(stripe, json={"rate_limit_rate": 0.0})  # Stripe is back

        def status() -> str:
            got = cloud.http(
                "GET", f"/v1/payments/{payment_id}", headers={"authorization": f"Bearer {key}"}
            )
            return str(got.body["status"])

        cloud.pump(rounds=200, until=lambda: status() == "succeeded")
    finally:
        httpx.put(stripe, json={"rate_limit_rate": 0.0})
        cloud.sfn.update_state_machine(stateMachineArn=arn, definition=deployed["definition"])
    cloud.pump()
    events = timeline(cloud, key, payment_id)
    assert events[:3] == ["payment.initiated", "payment.failed", "payment.retrying"]
    assert "payment.succeeded" in events
    [row] = [r for r in at_stripe(cloud, payment_id) if r["charged"]]
    assert row["amount_captured"] == 4_200
    runs = [
        cloud.sfn.describe_execution(executionArn=e["executionArn"])
        for e in cloud.sfn.list_executions(stateMachineArn=arn)["executions"]
    ]
    mine = [r for r in runs if payment_id in r["input"]]
    assert [r["status"] for r in mine] == ["SUCCEEDED"]
    assert any(i.function == "payment_retry" and i.error is None for i in cloud.invocations)


def test_a_merchants_rule_runs_on_eventbridge_and_its_target_gets_the_event_signed(
    cloud: Cloud,
) -> None:
    import stripe

    from paymesh.adapters.aws.rules import bus_rule_name
    from paymesh.entrypoints.server_thread import serving
    from tests.aws.harness import WebhookGate

    receiver = WebhookGate()
    key = cloud.api_key("m_rules")
    other = cloud.api_key("m_other")
    auth = {"authorization": f"Bearer {key}"}
    with serving(receiver.app) as url:
        made = cloud.http(
            "PUT",
            "/v1/rules/big-ones",
            {
                "event_pattern": {
                    "detail-type": ["payment.succeeded"],
                    "detail": {"amount": [{"numeric": [">=", 5000]}]},
                },
                "targets": [{"id": "hook", "type": "http", "url": f"{url}/hooks"}],
            },
            auth,
        )
        assert made.status == 200, made
        secret = made.body["signing_secret"]
        name = bus_rule_name(PREFIX, "m_rules", "big-ones")
        on_bus = cloud.events.describe_rule(Name=name, EventBusName=cloud.bus)
        assert json.loads(on_bus["EventPattern"]) == {
            "detail-type": ["payment.succeeded"],
            "detail": {
                "amount": [{"numeric": [">=", 5000]}],
                "paymesh": {"merchant_id": ["m_rules"]},
            },
        }
        [target] = cloud.events.list_targets_by_rule(Rule=name, EventBusName=cloud.bus)["Targets"]
        assert target["RetryPolicy"] == {
            "MaximumRetryAttempts": 3,
            "MaximumEventAgeInSeconds": 3600,
        }
        assert target["DeadLetterConfig"]["Arn"].endswith(f"{PREFIX}-dlq-merchant-rules")

        big = pay(cloud, key, 6_000)[0].body
        pay(cloud, key, 1_000)  # too small for the rule
        pay(cloud, other, 9_000)  # another merchant's: never its business
        cloud.pump()
        [(path, headers, body)] = receiver.take()
        event = stripe.Webhook.construct_event(body.decode(), headers["paymesh-signature"], secret)
        assert (path, event["detail-type"], event["resources"]) == (
            "/hooks",
            "payment.succeeded",
            [big["id"]],
        )
        assert event["account"] == "m_rules" and event["detail"]["amount"] == 6_000
        assert headers["paymesh-event-id"] == event["id"]

        deleted = cloud.http("DELETE", "/v1/rules/big-ones", headers=auth)
        assert deleted.status == 200, deleted
        names = [r["Name"] for r in cloud.events.list_rules(EventBusName=cloud.bus)["Rules"]]
        assert name not in names
        pay(cloud, key, 7_000)
        cloud.pump()
        assert receiver.take() == []
