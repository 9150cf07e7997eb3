"""Who is looking at the dashboard: the merchant of an API key, kept in a cookie.

The login form posts the key (never a query string, so never a URL, a log line or a
Referer); the answer sets it as an HttpOnly, SameSite=Strict cookie scoped to /dashboard, and
every page authenticates it exactly as the API authenticates a bearer header, rate limit
included. So there is no second kind of credential: revoking the key (`paymesh keys revoke`)
ends its dashboard sessions at once, in every process, with no session store to share and no
server secret to sign one with.

SameSite=Strict keeps other sites' forms from riding the cookie; the Origin check on every
POST is the second lock, for browsers that send a cross-site POST anyway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from paymesh.entrypoints.http.common import api
from paymesh.service.errors import ApiError, RateLimited

COOKIE = "paymesh_dashboard"
PATH = "/dashboard"
#: A working day: after it the operator logs in again.
MAX_AGE = 12 * 3600


class NotSignedIn(Exception):
    """No key, or one that is unknown, revoked or over its rate limit: off to the login page
    (with why, for the last)."""

    def __init__(self, why: str = "") -> None:
        super().__init__(why)
        self.why = why


class CrossSiteRequest(Exception):
    """A state-changing request whose Origin is not this dashboard's."""


async def key_owner(request: Request, key: str) -> str:
    """The merchant of `key`, as the API would decide it; raises ApiError if it is not one."""
    a = api(request)
    merchant, key_id = await a.auth.identify(f"Bearer {key}")
    wait = await a.limiter.check(key_id)
    if wait is not None:
        raise RateLimited(wait)
    return merchant


async def operator(request: Request) -> str:
    """The merchant whose dashboard this request may see."""
    key = request.cookies.get(COOKIE)
    if not key:
        raise NotSignedIn()
    if request.method == "POST":
        same_origin(request)
    try:
        return await key_owner(request, key)
    except RateLimited:
        raise NotSignedIn("too many requests with this key; wait a moment") from None
    except ApiError:
        raise NotSignedIn("that key is no longer valid") from None


def same_origin(request: Request) -> None:
    # Hosts, not schemes: behind a proxy that ends TLS the browser says https and we see http.
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise CrossSiteRequest(origin)


def sign_in(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        max_age=MAX_AGE,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_out(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
