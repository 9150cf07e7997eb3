"""Customer confirmations through SNS: one message per payment outcome, never two.

The topic is FIFO and each message's deduplication id is the event's id, so SNS itself
drops a second publish of the same outcome within its five-minute window (a retried Lambda
invocation comes well within it). Beyond it the notification the handler commits after
publishing stands guard: a redelivered event finds it and publishes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from paymesh.ports.store import Notification


class SnsConfirmations:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self.client = client
        self.topic_arn = topic_arn

    def send(self, notification: Notification, detail: dict[str, Any]) -> str:
        """Publish; returns SNS's message id."""
        body = {
            "notification_id": notification.id,
            "merchant_id": notification.merchant_id,
            "payment_id": notification.payment_id,
            "template": notification.template,
            "recipient": notification.recipient,
            "amount": detail.get("amount"),
            "currency": detail.get("currency"),
        }
        answer = self.client.publish(
            TopicArn=self.topic_arn,
            Message=json.dumps(body, separators=(",", ":")),
            Subject=f"payment {notification.payment_id}: {notification.template}",
            MessageGroupId=notification.payment_id,
            MessageDeduplicationId=notification.event_id,
            MessageAttributes={
                "template": {"DataType": "String", "StringValue": notification.template}
            },
        )
        return str(answer["MessageId"])
