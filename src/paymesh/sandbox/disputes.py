"""`POST /_disputes/{id}/close`: the card issuer's verdict on a dispute, on demand.

At a real PSP a dispute is decided weeks after it opens, by the customer's bank, on the
evidence the merchant sent. A test cannot wait for that, so each sandbox lets it play the
bank, next to `/_config` and outside any PSP's API (no auth):

    POST /_disputes/{the PSP's dispute id}/close   {"outcome": "won" | "lost"}
    200 {"id": ..., "outcome": ...}   the PSP's closing webhook is on its way, signed
    404   no open dispute of that id;   409   already closed;   400   a bad body

Each sandbox closes its own dispute and sends what its PSP sends (`<psp>/disputes.py`).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["DisputeAlreadyClosed", "close_route"]


class DisputeAlreadyClosed(Exception):
    """The bank decided already: a dispute is closed once."""


#: Closes the dispute of this id, won or not; KeyError if the sandbox has none of that id.
Close = Callable[[str, bool], None]

_OUTCOMES = {"won": True, "lost": False}


def close_route(close: Close, path: str = "/_disputes/{id}/close") -> Route:
    async def endpoint(request: Request) -> Response:
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            body = None
        outcome = body.get("outcome") if isinstance(body, dict) else None
        if not isinstance(outcome, str) or outcome not in _OUTCOMES:
            return _error(400, 'Body must be {"outcome": "won"} or {"outcome": "lost"}.')
        dispute_id = request.path_params["id"]
        try:
            close(dispute_id, _OUTCOMES[outcome])
        except KeyError:
            return _error(404, f"No dispute {dispute_id!r}.")
        except DisputeAlreadyClosed:
            return _error(409, f"Dispute {dispute_id!r} is already closed.")
        return Response(
            msgspec.json.encode({"id": dispute_id, "outcome": outcome}),
            media_type="application/json",
        )

    return Route(path, endpoint, methods=["POST"])


def _error(status: int, message: str) -> Response:
    body = {"error": {"type": "invalid_request_error", "message": message}}
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")
