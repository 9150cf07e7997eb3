"""PayPal's OAuth 2.0 client-credentials server: `POST /v1/oauth2/token`.

The client authenticates with HTTP Basic (client id : secret) and the form
`grant_type=client_credentials`, and gets a bearer token that every REST call
must carry. Each client id is its own merchant account in the sandbox. With no
client configured any non-empty id and secret are accepted, as the Stripe
sandbox accepts any test key; with one configured, only that pair is.

Tokens expire after `expires_in` seconds (PayPal: 32400) and can be expired
at once with `expire_all()`, so a client's refresh-on-401 can be tested. At most
`max_tokens` are kept (`paymesh.sandbox.limits`): issuing one more revokes the
oldest, whose client gets the same 401 as on expiry and asks for a new one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.ids import access_token, iso_time

__all__ = ["TokenServer"]

_SCOPES = " ".join(
    [
        "https://uri.paypal.com/services/payments/payment/authcapture",
        "https://uri.paypal.com/services/payments/refund",
        "https://uri.paypal.com/services/payments/orders/client_sdk_orders_api",
        "https://uri.paypal.com/services/applications/webhooks",
        "https://uri.paypal.com/services/disputes/read-seller",
    ]
)


@dataclass(frozen=True, slots=True)
class _Token:
    client_id: str
    expires_at: float


class TokenServer:
    def __init__(
        self,
        client_id: str | None,
        client_secret: str | None,
        ttl_seconds: int,
        clock: Callable[[], float] = time.monotonic,
        max_tokens: int = 10_000,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max_tokens
        self._tokens: dict[str, _Token] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def issue(self, authorization: str | None, form: bytes) -> dict[str, Any]:
        client_id = self._client(authorization)
        fields = dict(parse_qsl(form.decode("utf-8", "replace")))
        grant = fields.get("grant_type")
        if grant != "client_credentials":
            raise PayPalError.unsupported_grant_type(grant)
        now = self._clock()
        self._sweep(now)
        token = access_token()
        self._tokens[token] = _Token(client_id, now + self._ttl)
        while len(self._tokens) > self._max:  # memory is bounded: the oldest is revoked
            del self._tokens[next(iter(self._tokens))]
        return {
            "scope": _SCOPES,
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": self._ttl,
            "nonce": f"{iso_time()}{token[-12:]}",
        }

    def client_for(self, authorization: str | None) -> str:
        """The client id a bearer token was issued to; PayPal's 401s otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise PayPalError.authentication_failure()
        found = self._tokens.get(token.strip())
        if found is None or found.expires_at <= self._clock():
            raise PayPalError.invalid_token()
        return found.client_id

    def expire_all(self) -> None:
        self._tokens.clear()

    def _client(self, authorization: str | None) -> str:
        scheme, _, credentials = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            raise PayPalError.invalid_client()
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise PayPalError.invalid_client() from None
        client_id, _, secret = decoded.partition(":")
        if not client_id or not secret:
            raise PayPalError.invalid_client()
        if self._client_id is not None and not (
            hmac.compare_digest(client_id, self._client_id)
            and hmac.compare_digest(secret, self._client_secret or "")
        ):
            raise PayPalError.invalid_client()
        return client_id

    def _sweep(self, now: float) -> None:
        # Every token has the same lifetime, so the oldest expire first.
        while self._tokens:
            token, found = next(iter(self._tokens.items()))
            if found.expires_at > now:
                return
            del self._tokens[token]
