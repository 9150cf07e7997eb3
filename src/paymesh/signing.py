"""Signing a body the way Stripe signs its webhooks: `t=<unix>,v1=<hex HMAC-SHA256 of
"{t}.{body}">`.

Two parts of paymesh speak it: the Stripe connector (whose sandbox and tests sign Stripe's
webhooks with it) and the event bus (whose `Paymesh-Signature` header any Stripe webhook
library, the official `stripe` package included, verifies unchanged). It lives here, beside
neither, so that neither imports the other. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["signature_header"]


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
