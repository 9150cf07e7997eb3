"""paymesh: event-driven payment processing in front of Stripe, Adyen and PayPal.

The EventBridge pattern matcher is public: `paymesh.test_event_pattern(pattern, event)`
raises `paymesh.InvalidEventPattern` for a pattern EventBridge would refuse.
"""

from paymesh.rules import InvalidEventPattern, test_event_pattern

__all__ = ["InvalidEventPattern", "__version__", "test_event_pattern"]

__version__ = "0.1.0"
