"""The outbox's relay onto EventBridge: batches of at most ten, refused entries put again,
nothing dropped, and paymesh's event id surviving the trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from paymesh.adapters.aws.envelopes import entry, envelope
from paymesh.adapters.aws.eventbridge import EventBridgePublisher, PublishFailed
from tests.aws.harness import as_delivered
from tests.support.aws import moto_aws


def event(n: int) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"evt_{n:04d}",
        "source": "payment.service",
        "detail-type": "payment.succeeded",
        "account": "m_1",
        "time": "2026-12-04T12:00:00Z",
        "region": "local",
        "resources": [f"pay_{n}"],
        "detail": {"payment_id": f"pay_{n}", "amount": 1000 + n, "currency": "usd"},
    }


@pytest.fixture
def bus() -> Iterator[tuple[Any, Any, str]]:
    with moto_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name="pm-bus")
        url = sqs.create_queue(QueueName="tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(
            Name="all", EventBusName="pm-bus", EventPattern='{"source": ["payment.service"]}'
        )
        events.put_targets(Rule="all", EventBusName="pm-bus", Targets=[{"Id": "q", "Arn": arn}])
        yield events, sqs, url


def test_events_go_out_in_batches_of_ten_and_all_arrive_with_their_ids(
    bus: tuple[Any, Any, str],
) -> None:
    events, sqs, url = bus
    calls: list[int] = []
    events.meta.events.register(
        "provide-client-params.eventbridge.PutEvents",
        lambda params, **_: calls.append(len(params["Entries"])),
    )
    EventBridgePublisher(events, "pm-bus").publish([event(n) for n in range(25)])
    assert calls == [10, 10, 5]
    arrived = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        for m in batch:
            arrived.append(envelope(json.loads(m["Body"])))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(e["id"] for e in arrived) == [f"evt_{n:04d}" for n in range(25)]
    first = next(e for e in arrived if e["id"] == "evt_0003")
    assert first["account"] == "m_1"
    assert first["detail"] == {"payment_id": "pay_3", "amount": 1003, "currency": "usd"}


# EventBridge refusing part of a call cannot be had from moto; botocore's Stubber answers as
# EventBridge does (a FailedEntryCount and an ErrorCode on the refused entry).


def test_a_refused_entry_is_put_again_alone() -> None:
    client = boto3.client("events", region_name="us-east-1")
    sent = [entry(event(n), "pm-bus") for n in range(3)]
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [
                    {"EventId": "a"},
                    {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"},
                    {"EventId": "c"},
                ],
            },
            {"Entries": sent},
        )
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": "b"}]},
            {"Entries": [sent[1]]},
        )
        EventBridgePublisher(client, "pm-bus", sleep=lambda s: None).publish(
            [event(n) for n in range(3)]
        )
        stub.assert_no_pending_responses()


def test_an_entry_refused_every_time_fails_the_batch_instead_of_dropping_it() -> None:
    client = boto3.client("events", region_name="us-east-1")
    waits: list[float] = []
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response(
                "put_events",
                {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]},
            )
        with pytest.raises(PublishFailed, match="1 of 1 events refused"):
            EventBridgePublisher(client, "pm-bus", sleep=waits.append).publish([event(1)])
    assert waits == [0.1, 0.2, 0.4]


def test_the_envelope_survives_the_bus() -> None:
    original = event(7)
    put = entry(original, "pm-bus")
    delivered = as_delivered(put, "eventbridge-own-id")
    back = envelope(delivered)
    assert {k: back[k] for k in ("id", "account", "detail", "detail-type", "source", "time")} == {
        k: original[k] for k in ("id", "account", "detail", "detail-type", "source", "time")
    }
