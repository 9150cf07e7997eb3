"""The DynamoDB tables, one per spec of `paymesh.adapters.dynamodb.tables.TABLES` (the
same specs the store creates tables from where none exist): on-demand, encrypted with the
stack's key, point-in-time recovery, TTL and streams as each spec says."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.naming import Names
from paymesh.adapters.dynamodb.tables import TABLES, Key, TableSpec

_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: Key) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


def _optional(key: Key | None) -> dynamodb.Attribute | None:
    return None if key is None else _attribute(key)


class Data(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names, key: kms.IKey) -> None:
        super().__init__(scope, id)
        #: By table suffix ("transactions", "events", ...).
        self.tables: dict[str, dynamodb.Table] = {}
        self.specs: dict[str, TableSpec] = {}
        for spec in TABLES:
            table = dynamodb.Table(
                self,
                spec.suffix,
                table_name=names.table(spec),
                partition_key=_attribute(spec.hash_key),
                sort_key=_optional(spec.range_key),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=key,
                # Payments are financial records: restorable to any second of the last 35
                # days, and a stack update that would replace a table is refused.
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                deletion_protection=True,
                stream=None if spec.stream is None else dynamodb.StreamViewType[spec.stream],
                time_to_live_attribute=spec.ttl_attribute,
            )
            for index in spec.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=_attribute(index.hash_key),
                    sort_key=_optional(index.range_key),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            self.tables[spec.suffix] = table
            self.specs[spec.suffix] = spec

    def stream_arn(self, suffix: str) -> str:
        arn = self.tables[suffix].table_stream_arn
        if arn is None:
            raise ValueError(f"table {suffix} has no stream (paymesh.adapters.dynamodb.tables)")
        return arn
