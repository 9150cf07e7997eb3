"""PayPal: Orders v2 and Payments v2 over JSON, OAuth bearer tokens, RSA-signed webhooks."""

from paymesh.connectors.paypal.connector import PayPalConnector, PayPalSettings

__all__ = ["PayPalConnector", "PayPalSettings"]
