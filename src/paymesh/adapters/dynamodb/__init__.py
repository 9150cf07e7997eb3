"""DynamoDB: the store of the AWS deployment (the reference's tables, `tables.py`)."""

from paymesh.adapters.dynamodb.records import envelope_from_image
from paymesh.adapters.dynamodb.store import DynamoStore

__all__ = ["DynamoStore", "envelope_from_image"]
