"""The web dashboard under /dashboard: server-rendered pages (Jinja2) made lively with htmx,
and live charts drawn by uPlot, both vendored into the package (static/, with their licences):
it works on a machine with no way out, and no third party's script runs on a payment
platform's origin.

Behind the same API keys as the API (see session.py for how a key is kept).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from paymesh.entrypoints.http.dashboard import operations_pages as ops
from paymesh.entrypoints.http.dashboard import payments_pages as pay
from paymesh.entrypoints.http.dashboard import reconciliation_pages as recon
from paymesh.entrypoints.http.dashboard.fraud_pages import fraud
from paymesh.entrypoints.http.dashboard.money_pages import money
from paymesh.entrypoints.http.dashboard.rendering import HERE, STATIC_PREFIX, render
from paymesh.entrypoints.http.dashboard.session import (
    CrossSiteRequest,
    key_owner,
    same_origin,
    sign_in,
    sign_out,
)
from paymesh.service.errors import ApiError


async def login_form(request: Request) -> Response:
    return render(request, "login.html", {})


async def login(request: Request) -> Response:
    try:
        same_origin(request)
    except CrossSiteRequest:
        return Response("cross-site request refused", status_code=403)
    key = str((await request.form()).get("key") or "").strip()
    try:
        await key_owner(request, key)
    except ApiError as exc:
        # Said without the key: the page must not echo a secret back.
        return render(request, "login.html", {"error": exc.message}, status=401)
    response = RedirectResponse("/dashboard", status_code=303)
    sign_in(response, request, key)
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    sign_out(response)
    return response


def dashboard_routes() -> list[BaseRoute]:
    return [
        Route("/dashboard", pay.overview, methods=["GET"]),
        Route("/dashboard/login", login_form, methods=["GET"]),
        Route("/dashboard/login", login, methods=["POST"]),
        Route("/dashboard/logout", logout, methods=["POST"]),
        Route("/dashboard/live", pay.live, methods=["GET"]),
        Route("/dashboard/payments", pay.payments, methods=["GET"]),
        Route("/dashboard/payments/{payment_id}", pay.payment, methods=["GET"]),
        Route("/dashboard/reviews", ops.reviews, methods=["GET"]),
        Route("/dashboard/reviews/{review_id}/approve", ops.approve, methods=["POST"]),
        Route("/dashboard/reviews/{review_id}/reject", ops.reject, methods=["POST"]),
        Route("/dashboard/dead-letters", ops.dead_letters, methods=["GET"]),
        Route("/dashboard/dead-letters/redrive", ops.redrive_all, methods=["POST"]),
        Route("/dashboard/dead-letters/{delivery_id}/redrive", ops.redrive_one, methods=["POST"]),
        Route("/dashboard/rules", ops.rules, methods=["GET"]),
        Route("/dashboard/rules", ops.create_rule, methods=["POST"]),
        Route("/dashboard/rules/test", ops.test_rule, methods=["POST"]),
        Route("/dashboard/rules/{name}/state", ops.set_rule_state, methods=["POST"]),
        Route("/dashboard/routing", ops.routing, methods=["GET"]),
        Route("/dashboard/money", money, methods=["GET"]),
        Route("/dashboard/fraud", fraud, methods=["GET"]),
        Route("/dashboard/reconciliation", recon.reconciliation, methods=["GET"]),
        Route("/dashboard/reconciliation", recon.run_reconciliation, methods=["POST"]),
        Mount(STATIC_PREFIX, StaticFiles(directory=HERE / "static"), name="dashboard-static"),
    ]


__all__ = ["dashboard_routes"]
