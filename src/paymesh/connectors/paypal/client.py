"""PayPal's REST API over the process's transport: an OAuth bearer token on every call, JSON
both ways, and PayPal's failures as PspError.

Transport failures (in `connectors.transport`) and PayPal's error bodies (here) become
PspError with the two facts the service needs: may a retry help (`retryable`), and may
PayPal have acted (`outcome_unknown`).

    connection refused             retryable, nothing done
    timeout, 5xx                   retryable, outcome unknown (sync with the same request id)
    409 (request id in flight)     retryable, outcome unknown
    429                            retryable, nothing done
    other 4xx                      not retryable; `code` is PayPal's `issue` (or `name`)

The token request itself moves no money: its failures never leave the outcome unknown.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from paymesh.connectors.paypal.token import TokenCache
from paymesh.connectors.transport import HttpTransport, psp_transport_errors
from paymesh.ports.connector import PspError

__all__ = ["PSP", "PayPalHttp", "error_for", "issue_of"]

PSP = "paypal"


def issue_of(body: dict[str, Any]) -> str | None:
    details = body.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        issue = details[0].get("issue")
        return issue if isinstance(issue, str) else None
    return None


def error_for(status: int, body: dict[str, Any], outcome_unknown: bool = True) -> PspError:
    code = issue_of(body) or body.get("name") or body.get("error")
    message = str(body.get("message") or body.get("error_description") or f"HTTP {status}")
    if body.get("debug_id"):
        message = f"{message} (debug_id {body['debug_id']})"
    if status == 429:
        return PspError(PSP, message, http_status=status, code=code or "RATE_LIMIT_REACHED")
    if status == 409 or status >= 500:  # 409: our request id is still executing at PayPal
        return PspError(
            PSP, message, http_status=status, code=code, outcome_unknown=outcome_unknown
        )
    return PspError(PSP, message, http_status=status, code=code, retryable=False)


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError:
        body = {}
    return body if isinstance(body, dict) else {}


class PayPalHttp:
    """One PayPal account's API: base URL, client credentials, a cached bearer token."""

    def __init__(
        self,
        api_base: str,
        client_id: str,
        client_secret: str,
        timeout_seconds: float,
        transport: HttpTransport,
    ) -> None:
        self._base = api_base.rstrip("/")
        credentials = f"{client_id}:{client_secret}".encode()
        self._basic = f"Basic {base64.b64encode(credentials).decode()}"
        self._timeout = timeout_seconds
        self._tokens = TokenCache(self._fetch_token)
        self._transport = transport

    async def _fetch_token(self) -> tuple[str, float]:
        headers = {
            "Authorization": self._basic,
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        # A token request moves no money: whatever happens to it, nothing was charged.
        with psp_transport_errors(PSP, "PayPal", outcome_unknown=False):
            answer = await self._transport.request(
                "POST",
                f"{self._base}/v1/oauth2/token",
                headers,
                b"grant_type=client_credentials",
                self._timeout,
            )
        body = _decode(answer.body)
        token, expires_in = body.get("access_token"), body.get("expires_in")
        if answer.status != 200 or not isinstance(token, str) or not isinstance(expires_in, int):
            raise error_for(answer.status, body, outcome_unknown=False)
        return token, float(expires_in)

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        request_id: str | None,
        token: str,
    ) -> tuple[int, dict[str, Any]]:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "Prefer": "return=representation",
        }
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        data = None
        if method == "POST":
            headers["Content-Type"] = "application/json"
            data = msgspec.json.encode(body or {})
        with psp_transport_errors(PSP, "PayPal"):
            answer = await self._transport.request(
                method, self._base + path, headers, data, self._timeout
            )
        return answer.status, _decode(answer.body)

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of one call; a dropped token is replaced and the call made
        once more."""
        token = await self._tokens.get()
        status, answer = await self._send(method, path, body, request_id, token)
        if status == 401:
            # PayPal dropped the token before its time; a 401 means nothing was done, so
            # the same call is safe to make again, once, with a new token.
            token = await self._tokens.refresh(stale=token)
            status, answer = await self._send(method, path, body, request_id, token)
        return status, answer
