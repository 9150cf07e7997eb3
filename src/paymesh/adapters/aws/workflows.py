"""The Step Functions state machines, in Amazon States Language, built from the names of
what they touch. The CDK stack deploys these definitions and the tests against moto run them.

Their input is the EventBridge event that started them: paymesh's merchant id is in
`detail.paymesh` (see `paymesh.adapters.aws.envelopes`).

Both talk to paymesh only through the event bus (`events:putEvents`), never by invoking a
function: each step is then a plain event, routed by a rule, handled by a function that is
idempotent by event id like every other target.
"""

from __future__ import annotations

from typing import Any

#: Source of the events paymesh's own workflows put on the bus (the payment service's are
#: `payment.service`).
WORKFLOW_SOURCE = "paymesh.workflows"

#: The reference's retry schedule: attempt n waits base * 2^(n-1) seconds; after the fourth
#: retry (five attempts in all) it stops.
RETRY_ATTEMPTS = 4


def _put_event(bus: str, detail_type: str, detail: dict[str, str]) -> dict[str, Any]:
    return {
        "Entries": [
            {
                "EventBusName": bus,
                "Source": WORKFLOW_SOURCE,
                "DetailType": detail_type,
                "Detail": detail,
            }
        ]
    }


def review_definition(bus: str, timeout_seconds: int) -> dict[str, Any]:
    """Manual review: announce the review with a task token and wait for the decision
    (`SendTaskSuccess` when someone approves or rejects it through the API). No decision
    within `timeout_seconds` rejects the payment: a held payment must not stay held."""
    return {
        "Comment": "paymesh manual review: wait for a decision, reject on timeout",
        "StartAt": "AwaitDecision",
        "States": {
            "AwaitDecision": {
                "Type": "Task",
                "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
                "Parameters": _put_event(
                    bus,
                    "review.opened",
                    {
                        "payment_id.$": "$.detail.payment_id",
                        "merchant_id.$": "$.detail.paymesh.merchant_id",
                        "task_token.$": "$$.Task.Token",
                    },
                ),
                "TimeoutSeconds": timeout_seconds,
                "ResultPath": "$.decision",
                "Catch": [
                    {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "TimedOut"}
                ],
                "Next": "Decided",
            },
            "TimedOut": {
                "Type": "Task",
                "Resource": "arn:aws:states:::events:putEvents",
                "Parameters": _put_event(
                    bus,
                    "review.timed_out",
                    {
                        "payment_id.$": "$.detail.payment_id",
                        "merchant_id.$": "$.detail.paymesh.merchant_id",
                    },
                ),
                "ResultPath": None,
                "Next": "Rejected",
            },
            "Rejected": {"Type": "Succeed"},
            "Decided": {"Type": "Succeed"},
        },
    }


def retry_definition(bus: str, base_seconds: int) -> dict[str, Any]:
    """The PSP retry schedule for a retryable failure: wait base * 2^(attempt-1) seconds,
    then announce `payment.retry_due` (the payment_retry function makes the attempt)."""
    choices = []
    states: dict[str, Any] = {}
    for attempt in range(1, RETRY_ATTEMPTS + 1):
        choices.append(
            {"Variable": "$.detail.attempt", "NumericEquals": attempt, "Next": f"Wait{attempt}"}
        )
        states[f"Wait{attempt}"] = {
            "Type": "Wait",
            "Seconds": base_seconds * 2 ** (attempt - 1),
            "Next": "Due",
        }
    states["Due"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::events:putEvents",
        "Parameters": _put_event(
            bus,
            "payment.retry_due",
            {
                "payment_id.$": "$.detail.payment_id",
                "merchant_id.$": "$.detail.paymesh.merchant_id",
                "attempt.$": "States.Format('{}', $.detail.attempt)",
            },
        ),
        "End": True,
    }
    states["Exhausted"] = {"Type": "Succeed"}
    return {
        "Comment": "paymesh PSP retry schedule: exponential backoff between attempts",
        "StartAt": "Backoff",
        "States": {
            "Backoff": {"Type": "Choice", "Choices": choices, "Default": "Exhausted"},
            **states,
        },
    }
