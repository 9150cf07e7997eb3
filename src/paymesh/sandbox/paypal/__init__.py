"""An offline PayPal that speaks PayPal's REST wire format.

    sandbox = PayPalSandbox(PayPalSandboxSettings(webhook_url="http://.../webhooks/paypal"))
    app = Starlette(routes=[Mount("/sandbox/paypal", app=sandbox.app)], lifespan=...)
    # the parent's lifespan awaits sandbox.start() and sandbox.stop()
    connector_trust_root = sandbox.certificate_pem

Get a token at `/v1/oauth2/token` (HTTP Basic, any client id and secret unless
configured), then use Orders v2 and Payments v2 with it. Cards come from the
shared test vault: `payment_source.card.vault_id` is a token such as
`pm_card_visa` or `pm_card_chargeDeclinedInsufficientFunds`. PayPal wallets
wait for the buyer at the order's `payer-action` (or `approve`) link, which a
test can simply GET. Webhooks are signed with the sandbox's own RSA key; its
certificate is served at `sandbox.cert_path`. Fault injection is at
`PUT /sandbox/paypal/_config`.
"""

from paymesh.sandbox.paypal.app import PayPalSandbox, PayPalSandboxSettings
from paymesh.sandbox.paypal.signing import SigningIdentity
from paymesh.sandbox.paypal.wallets import ECHECK_CLEARS, ECHECK_DENIED

__all__ = [
    "ECHECK_CLEARS",
    "ECHECK_DENIED",
    "PayPalSandbox",
    "PayPalSandboxSettings",
    "SigningIdentity",
]
