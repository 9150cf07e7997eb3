"""Creating the tables of `tables.TABLES` (tests, local deploys), or checking they exist.

Deployed tables are the CDK stack's; a store that finds one missing says so rather than
creating it with settings the stack would not have chosen. Blocking: call it in the store's
executor.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from paymesh.adapters.dynamodb.tables import TABLES, TableSpec


def create_table_request(spec: TableSpec, prefix: str) -> dict[str, Any]:
    """The CreateTable request for `spec`: on-demand billing, every index projecting all
    attributes, the stream the spec asks for."""
    keys = [{"AttributeName": spec.hash_key.name, "KeyType": "HASH"}]
    if spec.range_key is not None:
        keys.append({"AttributeName": spec.range_key.name, "KeyType": "RANGE"})
    request: dict[str, Any] = {
        "TableName": spec.name(prefix),
        "KeySchema": keys,
        "AttributeDefinitions": [
            {"AttributeName": k.name, "AttributeType": k.type} for k in spec.attributes()
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.hash_key.name, "KeyType": "HASH"},
                    *(
                        []
                        if index.range_key is None
                        else [{"AttributeName": index.range_key.name, "KeyType": "RANGE"}]
                    ),
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in spec.indexes
        ]
    if spec.stream is not None:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
    return request


def create_tables(client: Any, prefix: str) -> None:
    """Create every table that does not exist yet, with TTL and point-in-time recovery on."""
    for spec in TABLES:
        name = spec.name(prefix)
        try:
            client.create_table(**create_table_request(spec, prefix))
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise
        client.get_waiter("table_exists").wait(
            TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        if spec.ttl_attribute is not None:
            ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                client.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
                )
        # Payments are financial records: restorable to any second of the last 35 days.
        client.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )


def check_tables(client: Any, prefix: str) -> None:
    for spec in TABLES:
        name = spec.name(prefix)
        try:
            client.describe_table(TableName=name)
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            raise RuntimeError(
                f"DynamoDB table {name} does not exist: deploy the stack (infra/), or open"
                " the store with create_tables=True"
            ) from err
