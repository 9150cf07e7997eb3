"""What every dashboard page shares: its templates, its headers, and what happens when the
visitor is not signed in or an action is refused."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from paymesh.domain import money
from paymesh.entrypoints.http.dashboard.session import CrossSiteRequest, NotSignedIn, operator

HERE = Path(__file__).parent
STATIC_PREFIX = "/dashboard/static"

#: Scripts and styles from this origin only (htmx and uPlot are vendored beside the
#: templates); uPlot sizes its canvas through style attributes, hence 'unsafe-inline' for
#: styles alone. Forms post to this origin only; no page may be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Nothing to other sites; "same-origin", not "no-referrer", because under the latter
    # browsers send `Origin: null` with a form's POST and the Origin check could not tell.
    "Referrer-Policy": "same-origin",
    # A payment page holds customer data: not for a shared cache nor the back button's.
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")


def _amount(minor: int, currency: str) -> str:
    return money.format_amount(minor, currency)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["amount"] = _amount
templates.env.filters["when"] = _when
templates.env.globals["static"] = STATIC_PREFIX


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    context = {
        "notice": request.query_params.get("notice"),
        "error": request.query_params.get("error"),
        **context,
    }
    return templates.TemplateResponse(request, name, context, status_code=status, headers=HEADERS)


def back_to(path: str, **message: str) -> Response:
    """After an action: to `path`, saying how it went (POST, redirect, GET: a reload does
    not repeat the action)."""
    query = urlencode({k: v for k, v in message.items() if v})
    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}{query}" if query else path, status_code=303)


Page = Callable[[Request, str], Awaitable[Response]]


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """A dashboard route: `handler` gets the request and the signed-in merchant; a visitor
    who is not signed in is sent to the login page, a cross-site POST is refused."""

    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        try:
            merchant = await operator(request)
        except NotSignedIn as exc:
            target = "/dashboard/login" + (f"?{urlencode({'error': exc.why})}" if exc.why else "")
            if request.headers.get("hx-request"):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        except CrossSiteRequest:
            return Response("cross-site request refused", status_code=403, headers=HEADERS)
        return await handler(request, merchant)

    return route
