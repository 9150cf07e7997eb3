"""Dead letters on AWS: each EventBridge target's own SQS queue (`<prefix>-dlq-<rule>-<id>`).

EventBridge writes a dead letter as the event itself, with why in message attributes
(RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE, RETRY_ATTEMPTS). Listing peeks at the queues
(received with a zero visibility timeout, so nothing is hidden from the next look); a redrive
hands the event to its target once more and deletes the letter only after the target took
it: a redrive that fails leaves the letter where it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paymesh.adapters.aws.envelopes import envelope


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str  # the SQS message id
    queue: str
    event_id: str
    merchant_id: str
    detail_type: str
    rule: str
    target_arn: str
    error: str
    event: dict[str, Any]
    receipt: str


def lambda_invoker(client: Any) -> Callable[[str, dict[str, Any]], None]:
    """Hands an event to a Lambda target as EventBridge does: an asynchronous invocation."""

    def invoke(target_arn: str, event: dict[str, Any]) -> None:
        client.invoke(
            FunctionName=target_arn, InvocationType="Event", Payload=json.dumps(event).encode()
        )

    return invoke


class SqsDeadLetters:
    def __init__(
        self, sqs: Any, prefix: str, invoke: Callable[[str, dict[str, Any]], None]
    ) -> None:
        self.sqs = sqs
        self.prefix = prefix
        self.invoke = invoke

    def queues(self) -> list[str]:
        answer = self.sqs.list_queues(QueueNamePrefix=f"{self.prefix}-dlq-")
        return sorted(answer.get("QueueUrls", []))

    def letters(self, merchant_id: str, limit: int = 50) -> list[DeadLetter]:
        found: dict[str, DeadLetter] = {}
        for url in self.queues():
            for message in self._peek(url):
                letter = _letter(url, message)
                if letter.merchant_id == merchant_id:
                    found.setdefault(letter.id, letter)
        return list(found.values())[:limit]

    def redrive(self, merchant_id: str, letter_id: str) -> bool:
        """The letter back to its target, once; False if there is no such letter (any more)."""
        for url in self.queues():
            for message in self._peek(url):
                letter = _letter(url, message)
                if letter.id == letter_id and letter.merchant_id == merchant_id:
                    self.invoke(letter.target_arn, letter.event)
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=letter.receipt)
                    return True
        return False

    def _peek(self, url: str) -> list[dict[str, Any]]:
        """Every letter of the queue, each as last received (a receipt handle is good only
        from the latest receive of its message)."""
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(10):  # a queue hands out at most ten a call, in no set order
            answer = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                MessageAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            for message in batch:
                seen[message["MessageId"]] = message
            if not fresh:
                break
        return list(seen.values())


def _letter(url: str, message: dict[str, Any]) -> DeadLetter:
    event = json.loads(message["Body"])
    attributes = message.get("MessageAttributes", {})

    def attribute(name: str) -> str:
        return str(attributes.get(name, {}).get("StringValue", ""))

    paymesh = envelope(event)
    return DeadLetter(
        id=message["MessageId"],
        queue=url,
        event_id=str(paymesh["id"]),
        merchant_id=str(paymesh["account"]),
        detail_type=str(paymesh["detail-type"]),
        rule=attribute("RULE_ARN").rsplit("/", 1)[-1],
        target_arn=attribute("TARGET_ARN"),
        error=f"{attribute('ERROR_CODE')}: {attribute('ERROR_MESSAGE')}".strip(": "),
        event=event,
        receipt=message["ReceiptHandle"],
    )
