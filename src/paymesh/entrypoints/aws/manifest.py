"""What runs on AWS, as data: the Lambda functions, what triggers each, what each may touch,
and the environment they read. The CDK stack (infra/) builds from it and the tests against
moto deploy from it, so the two cannot drift apart.

Handlers live in `paymesh.entrypoints.aws.handlers`; each is a plain `handler(event, context)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from paymesh.adapters.aws.workflows import WORKFLOW_SOURCE

HANDLERS = "paymesh.entrypoints.aws.handlers"

# -- the environment every function reads (names of what the stack created) --------------
ENV_TABLE_PREFIX = "PAYMESH_DYNAMODB_PREFIX"
ENV_EVENT_BUS = "PAYMESH_EVENT_BUS"
ENV_FRAUD_STREAM = "PAYMESH_FRAUD_STREAM"
ENV_CONFIRMATIONS_TOPIC = "PAYMESH_CONFIRMATIONS_TOPIC_ARN"
ENV_FRAUD_ALERTS_TOPIC = "PAYMESH_FRAUD_ALERTS_TOPIC_ARN"
ENV_REVIEW_STATE_MACHINE = "PAYMESH_REVIEW_STATE_MACHINE_ARN"
ENV_RETRY_STATE_MACHINE = "PAYMESH_RETRY_STATE_MACHINE_ARN"
#: Merchants' rules: the function their targets are delivered by, and its dead letters.
ENV_RULE_TARGET_FUNCTION = "PAYMESH_RULE_TARGET_FUNCTION_ARN"
ENV_RULE_DEAD_LETTERS = "PAYMESH_RULE_DEAD_LETTERS_ARN"


@dataclass(frozen=True, slots=True)
class Trigger:
    """How a function is invoked.

    kind: "http" (API Gateway HTTP API route, `detail` = "METHOD /path"), "table-stream"
    (DynamoDB stream of the table with suffix `detail`), "kinesis" (the fraud stream),
    "rule" (EventBridge rule named `detail`: a default rule of
    paymesh/service/default_rules.json, or one of WORKFLOW_RULES), "schedule" (an
    EventBridge schedule expression in `detail`), "merchant-rules" (the rules merchants
    make through the API, put on the bus at run time by the `api` function).
    """

    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class Function:
    name: str  # the handler's name in HANDLERS, and the function's logical name
    description: str
    triggers: tuple[Trigger, ...]
    #: Tables (suffixes, see paymesh.adapters.dynamodb.tables) read and written.
    tables: tuple[str, ...] = ("transactions", "idempotency", "events", "state", "ledger")
    #: What else it may do: "events:put", "kinesis:put", "kinesis:read",
    #: "sns:confirmations", "sns:fraud-alerts", "states:review" (start + send task results),
    #: "events:rules" (put and delete merchants' rules on the bus).
    uses: tuple[str, ...] = ()
    memory_mb: int = 512
    timeout_seconds: int = 30
    #: For a default rule's builtin target: which target id of the rule this function is.
    target_id: str | None = None


#: Rules only the AWS deployment has: events paymesh's own state machines put on the bus.
WORKFLOW_RULES: dict[str, dict[str, list[str]]] = {
    "payment-retry-due": {"source": [WORKFLOW_SOURCE], "detail-type": ["payment.retry_due"]},
    "review-opened": {"source": [WORKFLOW_SOURCE], "detail-type": ["review.opened"]},
    "review-timed-out": {"source": [WORKFLOW_SOURCE], "detail-type": ["review.timed_out"]},
}

#: Rules only the AWS deployment has whose target is a service, not a function:
#: name -> (pattern, target). A fraud alert the stream scorer raises goes out through the
#: outbox like any event, and this rule hands it to the `fraud-alerts` topic.
SERVICE_RULES: dict[str, tuple[dict[str, list[str]], str]] = {
    "fraud-alerts": (
        {"source": ["fraud.service"], "detail-type": ["fraud.alert"]},
        "sns:fraud-alerts",
    ),
}

FUNCTIONS: tuple[Function, ...] = (
    Function(
        "api",
        "The payments API (the same ASGI app as `paymesh serve`)",
        (Trigger("http", "ANY /v1/{proxy+}"), Trigger("http", "GET /healthz")),
        uses=("states:review", "events:rules"),
    ),
    Function(
        "webhooks",
        "PSP webhooks: verified, de-duplicated, applied in order",
        (Trigger("http", "POST /webhooks/{psp}"),),
    ),
    Function(
        "publish_outbox",
        "The outbox relay: events table stream to the EventBridge bus",
        (Trigger("table-stream", "events"),),
        tables=("events",),
        uses=("events:put",),
    ),
    Function(
        "process_payment",
        "Drives a payment to its PSP if the inline attempt did not finish",
        (Trigger("rule", "payment-initiated"),),
        target_id="process",
        timeout_seconds=60,
    ),
    Function(
        "send_confirmation",
        "One confirmation per payment outcome, through SNS",
        (Trigger("rule", "payment-succeeded"), Trigger("rule", "customer-confirmation")),
        uses=("sns:confirmations",),
        target_id="confirmation",
    ),
    Function(
        "payment_retry",
        "Retries a retryable failure when the retry state machine says it is due",
        (Trigger("rule", "payment-retry-due"),),
        timeout_seconds=60,
    ),
    Function(
        "review_opened",
        "Keeps the review workflow's task token with the payment's review",
        (Trigger("rule", "review-opened"),),
        tables=("state",),
    ),
    Function(
        "review_timed_out",
        "Rejects a payment whose manual review was not decided in time",
        (Trigger("rule", "review-timed-out"),),
        timeout_seconds=60,
    ),
    Function(
        "deliver_rule_target",
        "Delivers a merchant's rule's event to its target (a signed HTTP POST)",
        (Trigger("merchant-rules", "*"),),
        timeout_seconds=60,
    ),
    Function(
        "score_fraud_stream",
        "Scores the fraud stream; alerts through SNS; reports partial batch failures",
        (Trigger("kinesis", "fraud"),),
        tables=("state",),
        uses=("kinesis:read", "sns:fraud-alerts"),
    ),
    Function(
        "recover_in_flight",
        "Drives payments left pending or processing to their true state",
        (Trigger("schedule", "rate(1 minute)"),),
        timeout_seconds=120,
    ),
)

#: Default-rule targets that are not a Lambda function on AWS: EventBridge delivers them to a
#: service directly.
#:   fraud_detection -> the Kinesis fraud stream (partition key: the customer)
#:   payment_retry   -> the retry state machine (a Wait per attempt, then payment.retry_due)
#:   fraud_review    -> the review state machine (waits for a decision with a task token)
#: `update_inventory` and `analytics` have no AWS target yet (see README "Running on AWS").
SERVICE_TARGETS = {
    "fraud_detection": "kinesis",
    "payment_retry": "states:retry",
    "fraud_review": "states:review",
}
