"""Routes of the manual review queue."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.domain.review import ReviewStatus
from paymesh.entrypoints.http.common import (
    api,
    int_param,
    json_response,
    merchant_of,
    reply_response,
)
from paymesh.entrypoints.http.schemas import ReviewDecisionBody, decode
from paymesh.service import views
from paymesh.service.errors import BadRequest


async def list_reviews(request: Request) -> Response:
    merchant = await merchant_of(request)
    raw = request.query_params.get("status")
    try:
        status = None if raw is None else ReviewStatus(raw)
    except ValueError:
        raise BadRequest(
            f"status must be one of {', '.join(s.value for s in ReviewStatus)}", param="status"
        ) from None
    page, has_more = await api(request).reviews.list(
        merchant,
        status,
        int_param(request, "limit", 10, 1, 100),
        request.query_params.get("starting_after"),
    )
    return json_response(
        200, views.list_view([views.review_view(p) for p in page], has_more, "/v1/reviews")
    )


async def get_review(request: Request) -> Response:
    merchant = await merchant_of(request)
    return reply_response(
        await api(request).reviews.get(merchant, request.path_params["review_id"])
    )


async def approve_review(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = decode(await request.body(), ReviewDecisionBody, empty_ok=True)
    return reply_response(
        await api(request).reviews.approve(merchant, request.path_params["review_id"], body.note)
    )


async def reject_review(request: Request) -> Response:
    merchant = await merchant_of(request)
    body = decode(await request.body(), ReviewDecisionBody, empty_ok=True)
    return reply_response(
        await api(request).reviews.reject(merchant, request.path_params["review_id"], body.note)
    )


def review_routes() -> list[BaseRoute]:
    return [
        Route("/v1/reviews", list_reviews, methods=["GET"]),
        Route("/v1/reviews/{review_id}", get_review, methods=["GET"]),
        Route("/v1/reviews/{review_id}/approve", approve_review, methods=["POST"]),
        Route("/v1/reviews/{review_id}/reject", reject_review, methods=["POST"]),
    ]
