"""The payer's side: PayPal's approval page and the card issuer's 3-D Secure page.

A test (or a person) follows the order's `approve` / `payer-action` link:

    GET /checkoutnow?token={order}                 the buyer logs in and approves
        &outcome=cancel                            ... or cancels
    GET /webapps/helios?action=verify&flow=3ds&cart_id={order}
        &outcome=fail                              3-D Secure fails

Approval (or 3-D Secure, passed or failed) makes the order APPROVED, sends
CHECKOUT.ORDER.APPROVED, and redirects (302) to the order's `return_url` with
`token` and `PayerID` (`liability_shift` after 3-D Secure), as PayPal does. A
cancel redirects to `cancel_url` and changes nothing. Without a URL to go back
to, the page answers with the order's id and status as JSON; so it does for a URL
whose host is not allowed (`paymesh.sandbox.return_urls`), marked
`"return_url_followed": false`: anyone with a client id can create an order, and
these pages must not redirect to wherever its creator points. A failed 3-D
Secure is recorded in `payment_source.card.authentication_result` with
`liability_shift: NO`; deciding not to capture then is the merchant's job, as
PayPal leaves it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from paymesh.sandbox.paypal.api import error_response, json_response, sandbox_urls
from paymesh.sandbox.paypal.calls import Call, Later
from paymesh.sandbox.paypal.errors import PayPalError
from paymesh.sandbox.paypal.events import EventPublisher
from paymesh.sandbox.paypal.ids import payer_id
from paymesh.sandbox.paypal.objects import Order
from paymesh.sandbox.paypal.state import Merchants
from paymesh.sandbox.paypal.wallets import wallet_for
from paymesh.sandbox.return_urls import ReturnHosts, with_query

__all__ = ["payer_routes"]

_PASSED = {
    "liability_shift": "POSSIBLE",
    "three_d_secure": {"enrollment_status": "Y", "authentication_status": "Y"},
}
_FAILED = {
    "liability_shift": "NO",
    "three_d_secure": {"enrollment_status": "Y", "authentication_status": "N"},
}


def payer_routes(
    merchants: Merchants,
    events: EventPublisher,
    later: Later,
    return_hosts: Callable[[], ReturnHosts],
) -> list[Route]:
    def find(order_id: str | None) -> Order | PayPalError:
        merchant = merchants.by_order.get(order_id or "")
        if merchant is None or order_id is None:
            return PayPalError.not_found("token", order_id or "")
        return merchant.orders[order_id]

    def approve(request: Request, order: Order, query: dict[str, str]) -> Response:
        merchant = merchants.by_order[order.id]
        call = Call(
            merchant=merchant,
            merchants=merchants,
            events=events,
            later=later,
            urls=sandbox_urls(request),
            body={},
            path={},
        )
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            order.status = "APPROVED"
            order.touch()
            call.emit(
                "CHECKOUT.ORDER.APPROVED",
                "checkout-order",
                order.wire(call.urls),
                "An order has been approved by buyer",
            )
        return _back(order, order.return_url, query, return_hosts())

    async def checkout(request: Request) -> Response:
        order = find(request.query_params.get("token"))
        if isinstance(order, PayPalError):
            return error_response(order)
        if order.card is not None:
            return error_response(
                PayPalError.unprocessable(
                    "PAYER_ACTION_REQUIRED",
                    "This order is paid by card: follow its payer-action link to 3-D Secure.",
                )
            )
        if request.query_params.get("outcome") == "cancel":
            return _back(order, order.cancel_url, {"token": order.id}, return_hosts())
        if order.status in ("CREATED", "PAYER_ACTION_REQUIRED"):
            order.wallet = order.wallet or wallet_for(None)
            order.payer_id = payer_id()
        return approve(request, order, {"token": order.id, "PayerID": order.payer_id or ""})

    async def three_d_secure(request: Request) -> Response:
        order = find(request.query_params.get("cart_id"))
        if isinstance(order, PayPalError):
            return error_response(order)
        if order.card is None:
            return error_response(
                PayPalError.unprocessable(
                    "PAYER_ACTION_REQUIRED",
                    "This order is paid with PayPal: follow its approval link.",
                )
            )
        if order.status == "PAYER_ACTION_REQUIRED":
            failed = request.query_params.get("outcome") == "fail"
            order.authentication = dict(_FAILED if failed else _PASSED)
        shift = (order.authentication or {}).get("liability_shift", "")
        return approve(request, order, {"token": order.id, "liability_shift": shift})

    return [
        Route("/checkoutnow", checkout, methods=["GET"]),
        Route("/webapps/helios", three_d_secure, methods=["GET"]),
    ]


def _back(order: Order, url: str | None, query: dict[str, str], hosts: ReturnHosts) -> Response:
    if url and hosts.allows(url):
        return RedirectResponse(with_query(url, query), status_code=302)
    body: dict[str, object] = {"id": order.id, "status": order.status}
    if url:
        body["return_url_followed"] = False  # not an allowed host: see the docstring
    return json_response(200, msgspec.json.encode(body))
