"""The stack's one customer-managed key: tables, the fraud stream, topics and queues are
encrypted at rest with it, so who may read payment data is decided in one key policy and in
IAM (each function may use the key only through the services it was granted)."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.naming import Names


class Encryption(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Key",
            alias=names.key_alias,
            description=f"paymesh ({names.prefix}): payment data at rest",
            enable_key_rotation=True,
        )
        # EventBridge writes an undeliverable event to its target's dead-letter queue as
        # itself, not as any role of ours: a KMS-encrypted queue needs the key to let it.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeDeadLetters",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )


def via(key: kms.IKey, service: str, *actions: str) -> iam.PolicyStatement:
    """Use of `key` only through `service` (a table, queue, topic or stream encrypted with
    it), never directly: a role that may decrypt a table's items cannot decrypt a queue's."""
    return iam.PolicyStatement(
        actions=list(actions),
        resources=[key.key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"{service}.{Aws.REGION}.amazonaws.com"}},
    )
