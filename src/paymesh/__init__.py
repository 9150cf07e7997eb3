"""paymesh: event-driven payment processing in front of Stripe, Adyen and PayPal."""

__all__ = ["__version__"]

__version__ = "0.1.0"
