"""An offline Adyen that speaks Checkout API v71 and sends Adyen's notification webhooks.

    sandbox = AdyenSandbox(AdyenSandboxSettings(webhook_url="http://.../webhooks/adyen"))
    app = Starlette(routes=[Mount("/sandbox/adyen", app=sandbox.app)], lifespan=...)
    # the parent's lifespan awaits sandbox.start() and sandbox.stop()

Point a client (our connector, or anything speaking Checkout) at
`http://HOST:PORT/sandbox/adyen` with any non-empty `X-API-Key`:

    POST /v71/payments                               authorise (vault token or raw test card)
    POST /v71/payments/details                       the outcome after the 3DS redirect
    POST /v71/payments/{pspReference}/captures       201 "received"; CAPTURE follows
    POST /v71/payments/{pspReference}/cancels        201 "received"; CANCELLATION follows
    POST /v71/payments/{pspReference}/refunds        201 "received"; REFUND follows
    GET  /v71/payments/{pspReference}                sandbox only: the payment's state
    GET  /_3ds/{pspReference}?outcome=succeed|fail   the shopper's 3DS challenge
    PUT  /_config                                    fault injection (see sandbox.faults)

Notifications are signed with the HMAC key (hex) exactly as Adyen signs them, so
`Adyen.util.is_valid_hmac_notification` accepts them.
"""

from paymesh.sandbox.adyen.app import DEFAULT_HMAC_KEY, AdyenSandbox, AdyenSandboxSettings

__all__ = ["DEFAULT_HMAC_KEY", "AdyenSandbox", "AdyenSandboxSettings"]
