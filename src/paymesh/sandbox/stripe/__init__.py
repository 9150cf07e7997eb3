"""An offline Stripe that speaks Stripe's real wire format.

    sandbox = StripeSandbox(StripeSandboxSettings(webhook_url="http://.../webhooks/stripe"))
    app = Starlette(routes=[Mount("/sandbox/stripe", app=sandbox.app)], lifespan=...)
    # the parent's lifespan awaits sandbox.start() and sandbox.stop()

Point the official `stripe` package (or our connector) at
`http://HOST:PORT/sandbox/stripe` with any `sk_test_...` key. Fault injection
is at `PUT /sandbox/stripe/_config`; 3-D Secure is completed at
`/sandbox/stripe/_3ds/{pi_id}?outcome=succeed|fail`.
"""

from paymesh.sandbox.faults import FaultInjector
from paymesh.sandbox.stripe.app import StripeSandbox, StripeSandboxSettings

__all__ = ["FaultInjector", "StripeSandbox", "StripeSandboxSettings"]
