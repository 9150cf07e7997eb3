"""The Twilio sandbox as an ASGI app: the Messages resource of API version 2010-04-01.

Routes are relative, so the app can be mounted anywhere (`/sandbox/twilio` beside the PSP
sandboxes). What it answers follows Twilio's documented shapes: a Message resource (`sid`
SM + 32 hex, `status` queued, RFC 2822 dates) on 201, and on an error Twilio's JSON
`{code, message, more_info, status}` with the HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.sandbox.faults import FaultInjector, Rejection, fault_config_route
from paymesh.sandbox.lifecycle import add_latency, client_gone
from paymesh.sandbox.limits import MemoryLimits, forget_oldest

__all__ = ["TEST_NUMBERS", "TwilioSandbox", "TwilioSandboxSettings"]

API_VERSION = "2010-04-01"
IDEMPOTENCY_HEADER = "i-twilio-idempotency-token"

#: Twilio's magic test numbers for `To`, each refused with Twilio's own error: the
#: permanent failures a test can ask for.
TEST_NUMBERS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass
class TwilioSandboxSettings:
    account_sid: str
    auth_token: str = field(repr=False)
    seed: int | None = None  # deterministic fault injection in tests
    limits: MemoryLimits = field(default_factory=MemoryLimits)


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return _json(self.status, body, headers)


class TwilioSandbox:
    """An offline Twilio: one account, messages kept in memory (newest last)."""

    def __init__(self, settings: TwilioSandboxSettings) -> None:
        self.settings = settings
        self.faults = FaultInjector(settings.seed)
        #: Accepted messages by sid, in the order they were accepted.
        self.messages: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, str] = {}  # idempotency token -> message sid
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        self.app = Starlette(
            routes=[
                Route(f"{base}/Messages.json", self._create, methods=["POST"]),
                Route(f"{base}/Messages.json", self._list, methods=["GET"]),
                Route(f"{base}/Messages/{{sid}}.json", self._fetch, methods=["GET"]),
                fault_config_route(self.faults),
            ]
        )

    async def start(self) -> None:
        self.faults.arm_holds()

    async def stop(self) -> None:
        self.faults.release_holds()

    def sent_to(self, number: str) -> list[dict[str, Any]]:
        return [m for m in self.messages.values() if m["to"] == number]

    # -- endpoints --------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            faults = self.faults.draw()
            await add_latency(faults.latency_s)
            if faults.rejection is Rejection.SERVER_ERROR:
                raise TwilioError(500, 20500, "Internal Server Error")
            if faults.rejection is Rejection.RATE_LIMITED:
                raise TwilioError(429, 20429, "Too Many Requests")
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
            message = self._accept(form, request.headers.get(IDEMPOTENCY_HEADER))
        except TwilioError as exc:
            return exc.response()
        # The message was taken; a held answer is one the client never sees.
        await self.faults.hold(faults.hold_response_s, client_gone(request))
        return _json(201, message)

    async def _list(self, request: Request) -> Response:
        try:
            self._authenticate(request)
        except TwilioError as exc:
            return exc.response()
        to = request.query_params.get("To")
        found = [m for m in reversed(self.messages.values()) if to is None or m["to"] == to]
        uri = f"/{API_VERSION}/Accounts/{self.settings.account_sid}/Messages.json"
        return _json(
            200,
            {
                "messages": found,
                "page": 0,
                "page_size": len(found),
                "start": 0,
                "end": max(len(found) - 1, 0),
                "uri": uri,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
            },
        )

    async def _fetch(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            message = self.messages.get(request.path_params["sid"])
            if message is None:
                raise TwilioError(404, 20404, "The requested resource was not found")
        except TwilioError as exc:
            return exc.response()
        return _json(200, message)

    # -- the account and its messages -------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        ok = (
            scheme.lower() == "basic"
            and hmac.compare_digest(user.encode(), self.settings.account_sid.encode())
            and hmac.compare_digest(password.encode(), self.settings.auth_token.encode())
        )
        if not ok:
            raise TwilioError(401, 20003, "Authenticate")
        if request.path_params["account_sid"] != self.settings.account_sid:
            raise TwilioError(404, 20404, "The requested resource was not found")

    def _accept(self, form: dict[str, str], token: str | None) -> dict[str, Any]:
        if token and token in self._tokens and self._tokens[token] in self.messages:
            return self.messages[self._tokens[token]]  # the same message, not a second one
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not sender:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if not body:
            raise TwilioError(400, 21602, "Message body is required.")
        if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) - 1 <= 15):
            raise TwilioError(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to in TEST_NUMBERS:
            code, text = TEST_NUMBERS[to]
            raise TwilioError(400, code, text)
        if len(body) > 1600:
            raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 limit.")
        sid = "SM" + secrets.token_hex(16)
        now = email.utils.format_datetime(datetime.now(UTC), usegmt=True)
        account = self.settings.account_sid
        message = {
            "sid": sid,
            "account_sid": account,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(max(1, -(-len(body) // 153)) if len(body) > 160 else 1),
            "price": None,
            "price_unit": "USD",
            "status": "queued",
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
            "subresource_uris": {
                "media": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media.json"
            },
        }
        self.messages[sid] = message
        if token:
            self._tokens[token] = sid
        limit = self.settings.limits
        forget_oldest(self.messages, limit.objects, lambda _m: False)
        forget_oldest(self._tokens, limit.idempotency_keys, lambda _s: False)
        return message


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
