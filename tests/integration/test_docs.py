"""/docs and /redoc, and the OpenAPI document they show: complete, and true to the answers.

The pages must work with no way out of the machine, so every script and style they load comes
from this server; the document must give every operation its success body and the error shape
of its 4xx, and the bodies a real server sends must match what it says.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs; schemathesis brings it
import pytest
from referencing import Registry, Resource

from paymesh.config import Settings
from paymesh.entrypoints.http.asgi import build_app
from paymesh.entrypoints.http.docs import docs_routes
from paymesh.entrypoints.http.openapi import build_openapi
from tests.integration.conftest import Server, make_keys
from tests.support.live_server import free_port, live_server

DOCUMENT = build_openapi()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("docs")
    port = free_port()
    settings = Settings.from_env(data_dir=tmp, port=port, rate_limit=0.0)
    key, other = make_keys(settings, "shop", "other-shop")
    app = build_app(settings)
    app.router.routes.extend(docs_routes())  # as the lead wires them into build_http_app
    with live_server(app, port) as base:
        yield Server(base, key, other, settings, app.state.sandbox_url)


# -- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_each_docs_page_loads_only_this_servers_assets(live: Server, page: str) -> None:
    r = httpx.get(live.base + page)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self'" in csp
    assert "<script>" not in r.text  # no inline script: the CSP would block it
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets, r.text
    for asset in assets:
        assert asset.startswith("/docs/static/"), f"{page} loads {asset} from elsewhere"
        got = httpx.get(live.base + asset)
        assert got.status_code == 200, asset
        assert len(got.content) > 100, asset
        kind = "text/css" if asset.endswith(".css") else "text/javascript"
        assert got.headers["content-type"].startswith(kind), (asset, got.headers)


def test_swagger_ui_reads_the_served_document_and_sends_it_nowhere(live: Server) -> None:
    init = httpx.get(f"{live.base}/docs/static/swagger-init.js").text
    assert 'url: "/openapi.json"' in init
    assert "validatorUrl: null" in init  # else the UI posts the document to swagger.io
    assert 'spec-url="/openapi.json"' in httpx.get(f"{live.base}/redoc").text
    assert httpx.get(f"{live.base}/openapi.json").json()["openapi"] == "3.1.0"


def test_the_vendored_assets_carry_their_licences() -> None:
    static = Path(build_app.__code__.co_filename).parent / "static"
    assert "Apache License" in (static / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (static / "redoc" / "LICENSE").read_text()


def test_a_missing_asset_is_a_404_not_a_crash(live: Server) -> None:
    r = httpx.get(f"{live.base}/docs/static/../../app.py")
    assert r.status_code == 404


# -- the document -------------------------------------------------------------------------------


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in DOCUMENT["paths"].items():
        for method, op in ops.items():
            yield path, method, op


@pytest.mark.parametrize(
    ("path", "method", "op"), list(_operations()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_operation_documents_its_success_body_and_its_errors(
    path: str, method: str, op: dict[str, Any]
) -> None:
    responses = op["responses"]
    ok = [code for code in responses if code.startswith("2")]
    assert len(ok) == 1, (method, path, ok)
    schema = responses[ok[0]]["content"]["application/json"]["schema"]
    assert schema["$ref"].removeprefix("#/components/schemas/") in DOCUMENT["components"]["schemas"]
    for code, response in responses.items():
        if code.startswith("4"):
            error = response["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}, (method, path, code)
            assert response["description"] != "error", f"{method} {path} {code}: say what it means"
    if method in ("post", "put") and path.startswith("/v1/"):
        assert {"413", "415"} <= set(responses)


def test_every_request_body_has_a_schema_not_a_bare_object() -> None:
    for path, method, op in _operations():
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            name = schema["$ref"].removeprefix("#/components/schemas/")
            target = DOCUMENT["components"]["schemas"][name]
            # Fields described, or none allowed (cancel takes no parameters yet).
            closed = target.get("additionalProperties") is False
            assert target.get("properties") or closed, (method, path, name)


# -- the answers match it -----------------------------------------------------------------------

_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:paymesh",
    Resource.from_contents(
        {**DOCUMENT, "$schema": jsonschema.Draft202012Validator.META_SCHEMA["$id"]}
    ),
)


def _check(r: httpx.Response, path: str, method: str) -> dict[str, Any]:
    """The answer's body against the document's schema for that operation and status."""
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(r.status_code) in responses, (method, path, r.status_code, r.text)
    schema = responses[str(r.status_code)]["content"]["application/json"]["schema"]
    ref = "urn:paymesh" + schema["$ref"]
    validator = jsonschema.Draft202012Validator({"$ref": ref}, registry=_REGISTRY)
    errors = [e.message for e in validator.iter_errors(r.json())]
    assert not errors, (method, path, r.status_code, errors, r.text[:500])
    body: dict[str, Any] = r.json()
    return body


def test_a_payment_lifecycle_answers_as_documented(live: Server) -> None:
    payment = {
        "amount": 2500,
        "currency": "eur",
        "customer_id": "cus_docs",
        "payment_method": "pm_card_visa",
        "capture_method": "manual",
        "metadata": {"order": "o-1"},
    }
    with live.client() as http:
        created = _check(http.post("/v1/payments", json=payment), "/v1/payments", "post")
        assert (created["status"], created["amount"]) == ("requires_capture", 2500)
        pid = created["id"]
        one = "/v1/payments/{payment_id}"
        _check(http.get(f"/v1/payments/{pid}"), one, "get")
        captured = _check(
            http.post(f"/v1/payments/{pid}/capture", json={"amount": 2000}),
            one + "/capture",
            "post",
        )
        assert (captured["status"], captured["amount_captured"]) == ("succeeded", 2000)
        refund = _check(
            http.post(f"/v1/payments/{pid}/refunds", json={"amount": 500}), one + "/refunds", "post"
        )
        assert refund["amount"] == 500
        _check(http.get(f"/v1/refunds/{refund['id']}"), "/v1/refunds/{refund_id}", "get")
        listed = _check(http.get("/v1/payments", params={"limit": 5}), "/v1/payments", "get")
        assert listed["data"][0]["id"] == pid
        timeline = _check(http.get(f"/v1/payments/{pid}/events"), one + "/events", "get")
        assert "payment.succeeded" in [e["detail-type"] for e in timeline["data"]]
        _check(http.get(f"/v1/payments/{pid}/notifications"), one + "/notifications", "get")
        _check(http.get("/v1/events"), "/v1/events", "get")
        cancel = http.post(f"/v1/payments/{pid}/cancel")
        assert cancel.status_code == 409
        _check(cancel, one + "/cancel", "post")

        declined = http.post(
            "/v1/payments", json={**payment, "payment_method": "pm_card_chargeDeclined"}
        )
        assert declined.status_code == 402
        error = _check(declined, "/v1/payments", "post")["error"]
        assert error["type"] == "card_error" and error["payment"]["status"] == "failed"
        missing = http.get("/v1/payments/pay_nope")
        assert missing.status_code == 404
        _check(missing, one, "get")
        bad = http.post("/v1/payments", json={**payment, "amount": 0})
        assert (bad.status_code, _check(bad, "/v1/payments", "post")["error"]["param"]) == (
            400,
            "amount",
        )


def test_rules_dead_letters_reviews_and_routing_answer_as_documented(live: Server) -> None:
    rule = {
        "event_pattern": {"detail-type": ["payment.succeeded"]},
        "targets": [{"id": "audit", "type": "http", "url": "https://example.invalid/hook"}],
    }
    with live.client() as http:
        put = http.put("/v1/rules/audit", json=rule)
        assert put.status_code in (200, 400), put.text
        _check(put, "/v1/rules/{name}", "put")
        listed = _check(http.get("/v1/rules"), "/v1/rules", "get")
        assert listed["data"], "the default rules are listed"
        tested = http.post(
            "/v1/rules/test",
            json={
                "event_pattern": rule["event_pattern"],
                "event": {"detail-type": "payment.succeeded"},
            },
        )
        assert _check(tested, "/v1/rules/test", "post") == {"result": True}
        if put.status_code == 200:
            _check(http.delete("/v1/rules/audit"), "/v1/rules/{name}", "delete")
        _check(http.get("/v1/dead-letters"), "/v1/dead-letters", "get")
        _check(
            http.post("/v1/dead-letters/del_nope/redrive"),
            "/v1/dead-letters/{delivery_id}/redrive",
            "post",
        )
        _check(http.get("/v1/reviews"), "/v1/reviews", "get")
        routing = _check(http.get("/v1/routing"), "/v1/routing", "get")
        _check(http.put("/v1/routing", json=routing["table"]), "/v1/routing", "put")
        _check(http.put("/v1/routing", json={"routes": "x"}), "/v1/routing", "put")
    _check(httpx.get(f"{live.base}/healthz"), "/healthz", "get")
    _check(httpx.get(f"{live.base}/readyz"), "/readyz", "get")
    unauth = httpx.get(f"{live.base}/v1/payments")
    assert unauth.status_code == 401
    _check(unauth, "/v1/payments", "get")
