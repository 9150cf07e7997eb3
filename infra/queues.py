"""Dead-letter queues: where an event or a stream batch goes when its retries are spent."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.encryption import via

#: The longest SQS keeps a message: an operator has two weeks to look and redrive.
RETENTION = Duration.days(14)


def dead_letter_queue(
    scope: Construct, id: str, *, name: str, key: kms.IKey, holds: str
) -> sqs.Queue:
    queue = sqs.Queue(
        scope,
        id,
        queue_name=name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=RETENTION,
    )
    Validations.of(queue).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SQS3",
            reason=f"This queue is itself a dead-letter queue (of {holds}); what lands here"
            " waits for an operator (`paymesh dlq`, alarm on depth), so a further DLQ behind"
            " it would only hide failures.",
        )
    )
    return queue


def send_to(queue: sqs.IQueue, key: kms.IKey) -> list[iam.PolicyStatement]:
    """What a role needs to put a message on `queue` (a KMS-encrypted one)."""
    return [
        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queue.queue_arn]),
        via(key, "sqs", "kms:GenerateDataKey", "kms:Decrypt"),
    ]
