"""Stripe: PaymentIntents over form-encoded HTTP, webhooks signed with HMAC-SHA256."""

from paymesh.connectors.stripe.connector import StripeConnector, StripeSettings

__all__ = ["StripeConnector", "StripeSettings"]
