"""The sandbox's 3-D Secure page: the shopper's side of a `RedirectShopper` action.

`GET /_3ds/{pspReference}` shows a page with two buttons; `GET` or `POST` with
`outcome=succeed|fail` completes the challenge as the shopper would:

    succeed -> the card's own outcome plays out (Authorised, captured unless manual; or its
               refusal), and its AUTHORISATION notification is sent
    fail    -> Refused, "3D Not Authenticated" (11), AUTHORISATION with success false

Then the browser is sent (303) to the payment's `returnUrl` with `redirectResult`, as Adyen
does; the merchant posts that to `/payments/details`. Without a returnUrl the page answers
`{"pspReference", "redirectResult"}` as JSON. Completing a challenge twice changes nothing.

Only to a returnUrl on an allowed host (`paymesh.sandbox.return_urls`): anyone with an API
key can create a payment, and the page must not become a redirector to wherever its creator
points. For any other returnUrl the page answers with the JSON, plus
`"returnUrlFollowed": false`.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from paymesh.sandbox.adyen import outcomes
from paymesh.sandbox.adyen.api import error_response, json_response
from paymesh.sandbox.adyen.authorisation import conclude
from paymesh.sandbox.adyen.errors import AdyenError
from paymesh.sandbox.adyen.ledger import Ledger, SandboxPayment, new_token
from paymesh.sandbox.adyen.notifications import Notifier
from paymesh.sandbox.forms import FormError, parse_form
from paymesh.sandbox.return_urls import ReturnHosts, with_query

__all__ = ["three_d_secure_route"]


def three_d_secure_route(
    ledger: Ledger, notifier: Notifier, return_hosts: Callable[[], ReturnHosts]
) -> Route:
    async def page(request: Request) -> Response:
        psp_reference = request.path_params["pspReference"]
        payment = ledger.find(psp_reference)
        challenged = payment is not None and (
            payment.result_code == "RedirectShopper" or payment.redirect_result is not None
        )
        if payment is None or not challenged:
            return error_response(AdyenError.not_found(f"no challenge for {psp_reference!r}"))
        if payment.cancelled and payment.redirect_result is None:
            return error_response(AdyenError.not_allowed("the payment has been cancelled"))
        outcome = request.query_params.get("outcome")
        if outcome is None and request.method == "POST":
            try:
                outcome = parse_form(await request.body()).get("outcome")
            except FormError:
                outcome = None
        if outcome is None and request.method == "GET":
            return HTMLResponse(_challenge_page(payment))
        if outcome not in ("succeed", "fail"):
            return error_response(AdyenError.field("outcome must be succeed or fail"))
        if payment.redirect_result is None:
            _complete(ledger, notifier, payment, outcome == "succeed")
        assert payment.redirect_result is not None
        return_url = payment.return_url
        if return_url and return_hosts().allows(return_url):
            query = {"redirectResult": payment.redirect_result}
            return RedirectResponse(with_query(return_url, query), status_code=303)
        answer: dict[str, object] = {
            "pspReference": payment.psp_reference,
            "redirectResult": payment.redirect_result,
        }
        if return_url:
            answer["returnUrlFollowed"] = False  # not an allowed host: see the docstring
        return json_response(200, msgspec.json.encode(answer), {})

    return Route("/_3ds/{pspReference}", page, methods=["GET", "POST"])


def _complete(
    ledger: Ledger, notifier: Notifier, payment: SandboxPayment, authenticated: bool
) -> None:
    assert payment.card is not None
    verdict = outcomes.for_card(payment.card) if authenticated else outcomes.THREE_DS_FAILED
    payment.redirect_result = new_token()
    ledger.by_redirect_result[payment.redirect_result] = payment.psp_reference
    notifier.send(conclude(payment, verdict))


def _challenge_page(payment: SandboxPayment) -> str:
    reference = html.escape(payment.psp_reference)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>3D Secure 2 Test Page</title></head>
<body>
<h1>paymesh sandbox (Adyen): 3D Secure 2 test page</h1>
<p>Authenticate a payment of {payment.value} ({html.escape(payment.currency)} minor units),
pspReference {reference}.</p>
<form method="post" action="?outcome=succeed"><button>Complete authentication</button></form>
<form method="post" action="?outcome=fail"><button>Fail authentication</button></form>
</body></html>"""
