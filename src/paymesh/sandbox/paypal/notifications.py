"""PayPal's webhook tools: the signing certificate, past events, and the signature check.

`GET /v1/notifications/certs/{cert_id}` serves the certificate that
`paypal-cert-url` points at; `GET /v1/notifications/webhooks-events/{id}` an
event the merchant was sent (the event's `self` link), byte for byte.

`POST /v1/notifications/verify-webhook-signature` does what PayPal's does: it
takes the five `paypal-*` header values, the webhook id and the event,
recomputes the signed message and answers `{"verification_status": "SUCCESS"}`
or `"FAILURE"`. Like PayPal's, it checks the CRC32 of the event's JSON as sent;
a client that re-serializes the event with other spacing or key order gets
FAILURE, which is why the event should be passed through byte for byte. It
accepts only this sandbox's certificate URL, as PayPal accepts only its own.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from paymesh.sandbox.paypal.api import error_response, json_response
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.events import EventPublisher, cert_path
from paymesh.sandbox.paypal.oauth import TokenServer
from paymesh.sandbox.paypal.signing import (
    AUTH_ALGO,
    SigningIdentity,
    signed_message,
    verify_signature,
)

__all__ = ["notification_routes"]

_API = "notifications/v1"


class _VerifyRequest(msgspec.Struct, forbid_unknown_fields=False):
    auth_algo: str
    cert_url: str
    transmission_id: str
    transmission_sig: str
    transmission_time: str
    webhook_id: str
    webhook_event: msgspec.Raw  # kept as sent: its CRC32 is part of what was signed


def notification_routes(
    identity: SigningIdentity, tokens: TokenServer, events: EventPublisher
) -> list[Route]:
    own_cert_path = cert_path(identity)

    async def certificate(request: Request) -> Response:
        if request.path_params["cert_id"] != identity.cert_id:
            return error_response(
                PayPalError.not_found("cert_id", request.path_params["cert_id"], _API)
            )
        return Response(identity.cert_pem, media_type="application/x-pem-file")

    async def verify(request: Request) -> Response:
        try:
            tokens.client_for(request.headers.get("authorization"))
            try:
                body = msgspec.json.decode(await request.body(), type=_VerifyRequest)
            except msgspec.ValidationError as exc:
                raise PayPalError.invalid_request("VALIDATION_ERROR", str(exc), api=_API) from None
            except msgspec.DecodeError:
                raise PayPalError.invalid_request(
                    "MALFORMED_REQUEST_JSON", "The request JSON is not well formed.", api=_API
                ) from None
        except PayPalError as error:
            return error_response(error)
        status = "SUCCESS" if _verified(body, identity, own_cert_path) else "FAILURE"
        return json_response(200, msgspec.json.encode({"verification_status": status}))

    async def event(request: Request) -> Response:
        try:
            owner = tokens.client_for(request.headers.get("authorization"))
        except PayPalError as error:
            return error_response(error)
        body = events.find(owner, request.path_params["event_id"])
        if body is None:
            return error_response(
                PayPalError.not_found("event_id", request.path_params["event_id"], _API)
            )
        return json_response(200, body)

    return [
        Route("/v1/notifications/webhooks-events/{event_id}", event, methods=["GET"]),
        Route("/v1/notifications/certs/{cert_id}", certificate, methods=["GET"]),
        Route("/v1/notifications/verify-webhook-signature", verify, methods=["POST"]),
    ]


def _verified(body: _VerifyRequest, identity: SigningIdentity, own_cert_path: str) -> bool:
    if body.auth_algo != AUTH_ALGO or not urlsplit(body.cert_url).path.endswith(own_cert_path):
        return False
    event = bytes(body.webhook_event)
    message = signed_message(body.transmission_id, body.transmission_time, body.webhook_id, event)
    return verify_signature(identity.certificate, message, body.transmission_sig)
