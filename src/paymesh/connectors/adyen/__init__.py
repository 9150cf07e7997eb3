"""Adyen: Checkout API v71 over JSON, standard notifications signed with HMAC-SHA256."""

from paymesh.connectors.adyen.connector import AdyenConnector, AdyenSettings

__all__ = ["AdyenConnector", "AdyenSettings"]
