"""Routes of the merchant's PSP routing table."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from paymesh.domain.routing import InvalidRoutingTable
from paymesh.entrypoints.http.common import api, json_response, merchant_of
from paymesh.service.errors import BadRequest


def _view(doc: object, breakers: dict[str, str]) -> dict[str, object]:
    return {"object": "routing_table", "table": doc, "circuits": breakers}


async def get_routing(request: Request) -> Response:
    merchant = await merchant_of(request)
    routing = api(request).routing
    table = await routing.table(merchant)
    return json_response(200, _view(table.doc, routing.circuits()))


async def put_routing(request: Request) -> Response:
    merchant = await merchant_of(request)
    routing = api(request).routing
    try:
        doc = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="body_invalid") from None
    try:
        table = await routing.put(merchant, doc)
    except InvalidRoutingTable as exc:
        raise BadRequest(str(exc), param="routes", code="routing_table_invalid") from None
    return json_response(200, _view(table.doc, routing.circuits()))


def routing_routes() -> list[BaseRoute]:
    return [
        Route("/v1/routing", get_routing, methods=["GET"]),
        Route("/v1/routing", put_routing, methods=["PUT"]),
    ]
