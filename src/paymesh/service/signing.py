"""Signing outgoing webhooks the way Stripe signs its own: `t=<unix>,v1=<hex HMAC-SHA256 of
"{t}.{body}">`, so any Stripe webhook library (the official `stripe` package included)
verifies paymesh's `Paymesh-Signature` header unchanged."""

from __future__ import annotations

import hashlib
import hmac


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
