"""The sandbox's 3-D Secure page: the customer's side of `next_action.redirect_to_url`.

`GET /_3ds/{pi_id}` shows a page with two buttons; `GET` or `POST` with
`outcome=succeed|fail` completes the challenge as the customer would:

    succeed -> the card's outcome plays out (succeeded, or requires_capture when manual)
    fail    -> requires_payment_method, last_payment_error payment_intent_authentication_failure

Then it redirects (303) to the PaymentIntent's `return_url` with Stripe's
query parameters, or, without one, answers with the new status as JSON.
Visiting again after completion changes nothing.

Only to a return URL on an allowed host (`paymesh.sandbox.return_urls`): anyone
with a test key can create a PaymentIntent, and the page must not become a
redirector to wherever its creator points. For any other return URL the page
answers with the JSON result, marked `"return_url_followed": false`.
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from paymesh.sandbox.forms import FormError, parse_form
from paymesh.sandbox.return_urls import ReturnHosts, with_query
from paymesh.sandbox.stripe.accounts import Accounts
from paymesh.sandbox.stripe.api import json_response, sandbox_url
from paymesh.sandbox.stripe.calls import Call
from paymesh.sandbox.stripe.charging import confirm_with_card, fail_authentication
from paymesh.sandbox.stripe.errors import StripeError
from paymesh.sandbox.stripe.events import EventPublisher
from paymesh.sandbox.stripe.objects import EventRequest

__all__ = ["three_d_secure_route"]


def three_d_secure_route(
    accounts: Accounts, events: EventPublisher, return_hosts: Callable[[], ReturnHosts]
) -> Route:
    async def page(request: Request) -> Response:
        """The customer's side of 3-D Secure: `outcome=succeed|fail` completes it."""
        intent_id = request.path_params["pi_id"]
        account = accounts.by_payment_intent.get(intent_id)
        intent = account.payment_intents.get(intent_id) if account else None
        if account is None or intent is None:
            error = StripeError.resource_missing("payment_intent", intent_id, "intent")
            return json_response(error.status, error.body(), {})
        outcome = request.query_params.get("outcome")
        if outcome is None and request.method == "POST":
            try:
                outcome = parse_form(await request.body()).get("outcome")
            except FormError:
                outcome = None
        if outcome is None and request.method == "GET":
            return HTMLResponse(_challenge_page(intent_id, intent.amount, intent.currency))
        if outcome not in ("succeed", "fail"):
            error = StripeError.invalid_request("outcome must be succeed or fail", param="outcome")
            return json_response(error.status, error.body(), {})
        pending = account.authentications.get(intent_id)
        if intent.status == "requires_action" and pending is not None:
            # A customer's action, not an API request: its events carry no request id.
            call = Call(account, accounts, events, EventRequest(None, None), sandbox_url(request))
            if outcome == "succeed":
                with contextlib.suppress(StripeError):  # a decline is already recorded
                    confirm_with_card(
                        call, intent, pending.card, pending.return_url, authenticated=True
                    )
            else:
                fail_authentication(call, intent, pending.card)
        return_url = pending.return_url if pending is not None else None
        redirect_status = (
            "succeeded" if intent.status in ("succeeded", "requires_capture") else "failed"
        )
        if return_url and return_hosts().allows(return_url):
            query = {
                "payment_intent": intent.id,
                "payment_intent_client_secret": intent.client_secret,
                "redirect_status": redirect_status,
            }
            return RedirectResponse(with_query(return_url, query), status_code=303)
        body: dict[str, object] = {
            "payment_intent": intent.id,
            "status": intent.status,
            "redirect_status": redirect_status,
        }
        if return_url:
            body["return_url_followed"] = False  # not an allowed host: see the docstring
        return json_response(200, msgspec.json.encode(body), {})

    return Route("/_3ds/{pi_id}", page, methods=["GET", "POST"])


def _challenge_page(intent_id: str, amount: int, currency: str) -> str:
    safe_id = html.escape(intent_id)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>3D Secure 2 Test Page</title></head>
<body>
<h1>paymesh sandbox: 3D Secure 2 test page</h1>
<p>Authenticate a payment of {amount} ({html.escape(currency.upper())} minor units)
for {safe_id}.</p>
<form method="post" action="?outcome=succeed"><button>Complete authentication</button></form>
<form method="post" action="?outcome=fail"><button>Fail authentication</button></form>
</body></html>"""
