"""Fuzz the HTTP API: schemathesis over its OpenAPI document, then what no schema can say.

schemathesis generates requests for every operation of the document `/openapi.json` serves
(ones that fit the schema and ones that break it) and checks every answer: no 5xx, a status
the document declares, the declared content type, a body that matches its schema, invalid
input refused, no `/v1` route that works without its key. Every 4xx must also be in
DESIGN.md's error shape.

The explicit cases go where generation does not: every route of the app, documented or not,
with each wrong method, no body, 5 MB, JSON nested 100,000 deep, bytes that are not UTF-8,
any unicode in every string field, integers past int64 and floats where ints go; webhooks
unsigned, forged, and signed garbage. Sizes: tests/fuzz/common.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from paymesh.adapters.sqlite import SqliteStore
from paymesh.connectors.adyen.webhook import sign as adyen_sign
from paymesh.connectors.stripe.webhook import sign as stripe_sign
from paymesh.domain.money import MAX_AMOUNT
from paymesh.entrypoints.http.app import routes
from paymesh.entrypoints.http.openapi import build_openapi
from paymesh.entrypoints.http.reviews_api import review_routes
from paymesh.entrypoints.http.routing_api import routing_routes
from paymesh.entrypoints.http.rules_api import bus_routes
from paymesh.sandbox.paypal.signing import SigningIdentity, signed_message
from paymesh.service.fraud_stream import CHECKPOINT
from tests.fuzz.common import EXAMPLES, assert_error_shape, assert_no_server_error, describe
from tests.integration.conftest import Server, start

GOOD = {
    "amount": 2000,
    "currency": "usd",
    "customer_id": "cus_fuzz",
    "payment_method": "pm_card_visa",
}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("fuzz-openapi"))


def auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


# -- schemathesis over the document -----------------------------------------------------------

# The document is built from the Structs that validate, with no server: the test below checks
# that the live server serves exactly this one, so fuzzing it is fuzzing /openapi.json.
DOCUMENT = build_openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
# Unknown query parameters are ignored (unlike unknown body fields): a design choice, not a
# crash to find, so none are generated.
schema.config.generation.update(
    max_examples=EXAMPLES,
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
    allow_extra_parameters=False,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def test_the_server_serves_the_document_that_is_fuzzed(live: Server) -> None:
    r = httpx.get(f"{live.base}/openapi.json")
    assert r.status_code == 200
    assert r.json() == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@FUZZ
def test_every_documented_operation(case: schemathesis.Case[Any], live: Server) -> None:
    response = case.call_and_validate(base_url=live.base, headers=auth(live), checks=CHECKS)
    if 400 <= response.status_code < 500:
        error = msgspec.json.decode(response.content)["error"]
        assert {"type", "code", "message"} <= set(error), response.content


# -- every route of the app, documented or not ------------------------------------------------

SAMPLE = {
    "payment_id": "pay_fuzz_missing",
    "refund_id": "re_fuzz_missing",
    "name": "fuzz-rule",
    "delivery_id": "dl_fuzz_missing",
    "review_id": "rev_fuzz_missing",
    "psp": "stripe",
}
WRONG = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")


def app_routes() -> list[Route]:
    return [
        r
        for r in (*routes(), *bus_routes(), *review_routes(), *routing_routes())
        if isinstance(r, Route)
    ]


def allowed(path: str) -> set[str]:
    """Every method some route answers on this concrete path."""
    methods: set[str] = set()
    for r in app_routes():
        if r.path_regex.match(path):
            methods |= r.methods or set()
    return methods


CONCRETE = sorted({r.path.format(**SAMPLE) for r in app_routes()})
WRITES = sorted(
    {
        (m, r.path.format(**SAMPLE))
        for r in app_routes()
        for m in (r.methods or ())
        if m in ("POST", "PUT")
    }
)


def test_every_route_is_in_the_document() -> None:
    """README: the full HTTP contract is at GET /openapi.json; a route missing there is a
    route schemathesis (and every client generator) never sees."""
    documented = {(m.upper(), p) for p, ops in DOCUMENT["paths"].items() for m in ops}
    served = {(m, r.path) for r in app_routes() for m in (r.methods or ()) if m != "HEAD"}
    missing = sorted(served - documented - {("GET", "/openapi.json")})
    assert not missing, f"routes served but not in /openapi.json: {missing}"


@pytest.mark.parametrize("path", CONCRETE)
def test_a_wrong_method_is_405_in_the_error_shape(live: Server, path: str) -> None:
    with live.client() as http:
        for method in WRONG:
            if method in allowed(path):
                continue
            r = http.request(
                method, path, content=b"{}", headers={"Content-Type": "application/json"}
            )
            assert_error_shape(r, 405)


def test_a_405_names_the_allowed_methods(live: Server) -> None:
    """RFC 9110 §15.5.6: a 405 carries `Allow` with the methods the resource supports."""
    wrong = []
    with live.client() as http:
        for path in CONCRETE:
            expected = allowed(path) - {"HEAD"}
            r = http.request("PATCH", path)
            assert r.status_code == 405, describe(r)
            named = {m.strip().upper() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if named - {"HEAD", "OPTIONS"} != expected:
                wrong.append(
                    f"PATCH {path}: Allow {r.headers.get('allow')!r}, expected {sorted(expected)}"
                )
    assert not wrong, "\n".join(wrong)


DEEP = 100_000
NESTED = {
    "empty": b"",
    "whitespace": b" \n\t ",
    "null": b"null",
    "array": b"[1, 2]",
    "5 MB of junk": b"\x00\x01junk" * 800_000,
    "5 MB string": b'{"description": "' + b"x" * 5_000_000 + b'"}',
    "5 MB object": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(500_000)) + b"}",
    "deep array": b"[" * DEEP + b"]" * DEEP,
    "deep object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep under every free-form field": (
        b'{"event_pattern":'
        + b'{"a":' * DEEP
        + b"1"
        + b"}" * DEEP
        + b', "event": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b', "routes": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}"
    ),
    "2,000 deep pattern": (
        b'{"event_pattern":' + b'{"a":' * 2000 + b'["x"]' + b"}" * 2000 + b', "event": {"a": "x"}}'
    ),
    "2,000 deep event": (
        b'{"event_pattern": {"a": [{"exists": true}]}, "event":'
        + b'{"a":' * 2000
        + b"1"
        + b"}" * 2000
        + b"}"
    ),
    "not UTF-8": b'{"customer_id": "\xff\xfe", "description": "caf\xe9"}',
    "UTF-16": '{"amount": 1}'.encode("utf-16"),
    "CESU surrogate": '{"description": "\ud83d\ude00"}'.encode("utf-8", "surrogatepass"),
    "escaped lone surrogate": b'{"description": "\\ud800", "customer_id": "\\udfff"}',
    "truncated": b'{"amount": 20',
    "trailing garbage": b'{"amount": 2000} trailing',
    "NaN": b'{"amount": NaN}',
    "duplicate keys": b'{"amount": 1, "amount": 2}',
}


@pytest.mark.parametrize("kind", list(NESTED))
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_bodies_no_schema_allows_are_4xx(live: Server, method: str, path: str, kind: str) -> None:
    started = time.monotonic()
    with live.client() as http:
        r = http.request(
            method,
            path,
            content=NESTED[kind],
            headers={"Content-Type": "application/json", **auth(live)},
        )
    assert_error_shape(r)
    assert time.monotonic() - started < 10, f"{kind} took too long"


def json_literal_body(field: str, literal: str, base: dict[str, Any]) -> bytes:
    encoded = json.dumps({**base, field: "@@"})
    return encoded.replace('"@@"', literal).encode()


NUMBERS = [
    "0",
    "-1",
    "1.0",
    "20.5",
    "1e3",
    "-0",
    "2.0e0",
    "9223372036854775808",
    "-9223372036854775809",
    str(MAX_AMOUNT + 1),
    "1" + "0" * 400,
    "9" * 5000,
    "true",
    "null",
    '"2000"',
    "[]",
    "{}",
    "Infinity",
    "1e400",
]
INT_FIELDS = [
    ("POST", "/v1/payments", "amount", GOOD),
    ("POST", "/v1/payments/{pid}/capture", "amount", {}),
    ("POST", "/v1/payments/{pid}/refunds", "amount", {}),
]


@pytest.fixture(scope="module")
def manual_payment(live: Server) -> str:
    with live.client() as http:
        r = http.post("/v1/payments", json={**GOOD, "capture_method": "manual"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# An optional amount may be null (it means all of it): not a bad value there.
AMOUNT_CASES = [
    (*fields, literal)
    for fields in INT_FIELDS
    for literal in NUMBERS
    if not (literal == "null" and not fields[3])
]


@pytest.mark.parametrize(("method", "path", "field", "base", "literal"), AMOUNT_CASES)
def test_an_amount_that_is_not_an_int_in_range_is_400(
    live: Server,
    manual_payment: str,
    method: str,
    path: str,
    field: str,
    base: dict[str, Any],
    literal: str,
) -> None:
    with live.client() as http:
        before = http.get(f"/v1/payments/{manual_payment}").json()
        r = http.request(
            method,
            path.format(pid=manual_payment),
            content=json_literal_body(field, literal, base),
            headers={"Content-Type": "application/json"},
        )
        error = assert_error_shape(r, 400)
        if error["code"] != "json_invalid":
            assert error.get("param") == field, describe(r)
        assert http.get(f"/v1/payments/{manual_payment}").json() == before


@pytest.mark.parametrize("literal", NUMBERS)
@pytest.mark.parametrize("field", ["maximum_retry_attempts", "maximum_event_age_seconds"])
def test_a_retry_policy_that_is_not_an_int_in_range_is_400(
    live: Server, field: str, literal: str
) -> None:
    policy = json.dumps({field: "@@"}).replace('"@@"', literal)
    body = (
        '{"event_pattern": {"source": ["x"]}, "targets": [{"id": "t", "type": "builtin", '
        '"name": "analytics", "retry_policy": ' + policy + "}]}"
    )
    with live.client() as http:
        r = http.put(
            "/v1/rules/fuzz-numbers",
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        if r.status_code == 200:  # e.g. "-0" and "2.0e0" are not ints; 0 attempts is fine
            assert literal in ("0", "-0"), describe(r)
            assert http.delete("/v1/rules/fuzz-numbers").status_code == 200
        else:
            assert_error_shape(r, 400)


QUERY_ROUTES = ["/v1/payments", "/v1/events", "/v1/reviews", "/v1/dead-letters", "/v1/disputes"]
QUERY_NAMES = [
    "limit",
    "starting_after",
    "customer_id",
    "status",
    "created_gte",
    "created_lt",
    "type",
]
query_text = st.one_of(
    st.text(max_size=40),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(
        [
            "",
            "-",
            "0",
            "101",
            "1e3",
            "9" * 5000,
            "-" + "9" * 30,
            "²",
            "٣",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "NaN",
            "2026-02-30",
            "succeeded",
            "open",
        ]
    ),
)


@FUZZ
@given(
    path=st.sampled_from(QUERY_ROUTES),
    query=st.dictionaries(st.sampled_from(QUERY_NAMES), query_text, max_size=4),
)
def test_any_query_string_is_a_page_or_a_400(
    live: Server, path: str, query: dict[str, str]
) -> None:
    with live.client() as http:
        r = http.get(path, params=query)
    if r.status_code == 200:
        body = r.json()
        assert body["object"] == "list" and isinstance(body["has_more"], bool), describe(r)
    elif len(str(r.request.url)) > 16_384:
        # A request line over the server's header limit is refused before any route: 431.
        assert_error_shape(r, 431)
    else:
        assert_error_shape(r, 400)


# -- unicode in every string field ------------------------------------------------------------

# The payment shows these back; the risk context (device, ip, city, country) it keeps to itself.
ECHOED = ["customer_id", "description"]
STRING_FIELDS = [
    *ECHOED,
    "device_id",
    "city",
    "ip_address",
    "currency",
    "payment_method",
    "capture_method",
    "connector",
    "country",
    "metadata key",
    "metadata value",
]
nasty = st.one_of(
    st.text(max_size=60),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=60),
    st.sampled_from(
        [
            "\x00",
            "a\x00b",
            "\u202eevil",
            "e\u0301",
            "\U0001f4b8" * 50,
            "\ufeff",
            "\u2028\u2029",
            "\uff55\uff53\uff44",
            "\uff35\uff33\uff24",
            "u\u0073d",
            "İ",
            "ß",
            "\\",
            '"',
            "' OR 1=1 --",
            "${jndi:x}",
            "%s%n",
            "\r\nX-Injected: 1",
            " " * 255,
        ]
    ),
)


def payment_body(field: str, value: str) -> dict[str, Any]:
    body: dict[str, Any] = {**GOOD, "customer_id": f"cus_{uuid.uuid4().hex[:8]}"}
    if field == "metadata key":
        body["metadata"] = {value: "v"}
    elif field == "metadata value":
        body["metadata"] = {"k": value}
    else:
        body[field] = value
    return body


@FUZZ
@given(field=st.sampled_from(STRING_FIELDS), value=nasty, ascii_only=st.booleans())
def test_any_unicode_in_any_string_field_is_stored_as_sent_or_refused(
    live: Server, field: str, value: str, ascii_only: bool
) -> None:
    body = payment_body(field, value)
    raw = json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    with live.client() as http:
        r = http.post("/v1/payments", content=raw, headers={"Content-Type": "application/json"})
        if r.status_code >= 400 and r.status_code != 402:
            assert_error_shape(r)
            return
        assert r.status_code in (201, 402), describe(r)
        sent = r.json()
        payment = sent["error"]["payment"] if r.status_code == 402 else sent
        stored = http.get(f"/v1/payments/{payment['id']}").json()
    assert stored["amount"] == body["amount"]
    if field in ECHOED:
        assert stored[field] == value, describe(r)
    elif field == "metadata key":
        assert stored["metadata"] == {value: "v"}, describe(r)
    elif field == "metadata value":
        assert stored["metadata"] == {"k": value}, describe(r)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
operators = st.fixed_dictionaries(
    {},
    optional={
        "prefix": json_values,
        "suffix": json_values,
        "anything-but": json_values,
        "numeric": json_values,
        "exists": json_values,
        "cidr": json_values,
        "equals-ignore-case": json_values,
        "wildcard": json_values,
        "$or": json_values,
    },
)
patterns = st.recursive(
    st.lists(json_values | operators, max_size=3),
    lambda inner: st.dictionaries(
        st.sampled_from(["source", "detail", "a", "$or", "", "é"]), inner, min_size=1, max_size=3
    ),
    max_leaves=10,
)


@FUZZ
@given(pattern=patterns | json_values, event=json_values)
def test_any_pattern_and_event_is_a_verdict_or_a_400(
    live: Server, pattern: object, event: object
) -> None:
    with live.client() as http:
        r = http.post("/v1/rules/test", json={"event_pattern": pattern, "event": event})
    if r.status_code == 200:
        assert isinstance(r.json()["result"], bool), describe(r)
    else:
        assert_error_shape(r, 400)


@FUZZ
@given(
    name=st.text(min_size=1, max_size=70),
    description=st.none() | st.text(max_size=600),
    pattern=patterns | json_values,
)
def test_any_rule_is_stored_or_a_400(
    live: Server, name: str, description: str | None, pattern: object
) -> None:
    body = {
        "event_pattern": pattern,
        "description": description,
        "targets": [{"id": "t", "type": "builtin", "name": "analytics"}],
    }
    path = "/v1/rules/" + quote(name, safe="")
    with live.client() as http:
        r = http.put(path, json=body)
        if r.status_code == 200:
            assert r.json()["description"] == description, describe(r)
            assert http.delete(path).status_code == 200
        else:
            assert_no_server_error(r)
            # A name with a "/" is another route: none (404), or a trailing slash the router
            # redirects away (307).
            if r.status_code not in (307, 404) or "/" not in name:
                assert_error_shape(r, 400)


@FUZZ
@given(
    table=json_values
    | st.fixed_dictionaries({}, optional={"routes": json_values, "default": json_values})
)
def test_any_routing_table_is_stored_or_a_400(live: Server, table: object) -> None:
    with live.client(live.other_key) as http:  # keeps the main merchant's routing default
        r = http.put("/v1/routing", json=table)
    if r.status_code == 200:
        assert r.json()["object"] == "routing_table", describe(r)
    else:
        assert_error_shape(r, 400)


# -- headers --------------------------------------------------------------------------------

# What a header value can carry: latin-1 without controls, no white space at either end.
latin1 = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300
).map(str.strip)


VALID = "<the test key>"


@FUZZ
@given(
    authorization=st.none() | st.just(VALID) | latin1 | latin1.map("Bearer pmk_".__add__),
    key=st.none() | latin1,
)
def test_any_authorization_and_idempotency_key_is_handled(
    live: Server, authorization: str | None, key: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = (
            auth(live)["Authorization"] if authorization == VALID else authorization
        )
    if key is not None:
        headers["Idempotency-Key"] = key
    encoded = {k.encode(): v.encode("latin-1") for k, v in headers.items()}
    body = {**GOOD, "customer_id": f"cus_{uuid.uuid4().hex[:8]}"}
    r = httpx.post(f"{live.base}/v1/payments", content=json.dumps(body).encode(), headers=encoded)
    if authorization != VALID:
        assert_error_shape(r, 401)
    elif r.status_code in (200, 201):
        assert r.json()["amount"] == GOOD["amount"], describe(r)
    elif r.status_code != 402:  # a fraud block or decline is a payment too
        error = assert_error_shape(r, (400, 422))
        assert error.get("param") == "Idempotency-Key" or error["type"] == "idempotency_error", (
            describe(r)
        )


# -- webhooks -------------------------------------------------------------------------------

SIGNATURE_HEADERS = {
    "stripe": ["Stripe-Signature"],
    "adyen": [],
    "paypal": [
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-AUTH-ALGO",
    ],
}
header_values = st.one_of(
    latin1,
    st.sampled_from(
        [
            "t=1,v1=00",
            f"t={int(time.time())},v1=" + "0" * 64,
            "t=,v1=",
            "t=" + "9" * 5000 + ",v1=ab",
            "SHA256withRSA",
            "=",
            "",
            "2026-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "AAAA",
            "!!!",
        ]
    ),
)
bodies = st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()))


@FUZZ
@given(psp=st.sampled_from(list(SIGNATURE_HEADERS)), body=bodies, data=st.data())
def test_an_unsigned_or_forged_webhook_is_400(
    live: Server, psp: str, body: bytes, data: st.DataObject
) -> None:
    headers = {
        name: data.draw(header_values, label=name)
        for name in SIGNATURE_HEADERS[psp]
        if data.draw(st.booleans(), label=f"{name}?")
    }
    encoded = {k.encode(): v.encode("latin-1") for k, v in headers.items()}
    r = httpx.post(f"{live.base}/webhooks/{psp}", content=body, headers=encoded)
    error = assert_error_shape(r, 400)
    assert error["code"] == "webhook_signature_invalid", describe(r)


def stripe_signed(server: Server, body: bytes) -> dict[str, str]:
    secret = server.settings.stripe_webhook_secret
    assert secret is not None  # sandbox mode generates every secret
    return {"Stripe-Signature": stripe_sign(body, secret, int(time.time()))}


def adyen_signed(server: Server, value: Any) -> bytes:
    """Sign every well-formed item, so the verifier passes and the translator sees it."""
    assert server.settings.adyen_hmac_key is not None  # sandbox mode generates every secret
    key = bytes.fromhex(server.settings.adyen_hmac_key)
    if isinstance(value, dict):
        for entry in value.get("notificationItems") or []:
            item = entry.get("NotificationRequestItem") if isinstance(entry, dict) else None
            if isinstance(item, dict) and isinstance(item.get("additionalData"), dict):
                item["additionalData"]["hmacSignature"] = adyen_sign(item, key)
    return json.dumps(value).encode()


def paypal_signed(server: Server, body: bytes) -> dict[str, str]:
    identity = SigningIdentity.load_or_create(server.settings.data_dir / "sandbox")
    sent = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    transmission = str(uuid.uuid4())
    assert server.settings.paypal_webhook_id is not None  # sandbox mode generates every secret
    message = signed_message(transmission, sent, server.settings.paypal_webhook_id, body)
    return {
        "PAYPAL-TRANSMISSION-ID": transmission,
        "PAYPAL-TRANSMISSION-TIME": sent,
        "PAYPAL-TRANSMISSION-SIG": identity.sign(message),
        "PAYPAL-CERT-URL": "https://example.invalid/cert",
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


anything = json_values | st.text(max_size=10).map(lambda s: s or None)
stripe_events = st.fixed_dictionaries(
    {
        "id": anything,
        "type": st.sampled_from(
            ["payment_intent.succeeded", "charge.refunded", "charge.dispute.created", "x"]
        )
        | anything,
        "created": st.integers() | anything,
        "data": st.fixed_dictionaries(
            {
                "object": st.dictionaries(
                    st.sampled_from(
                        [
                            "id",
                            "status",
                            "amount",
                            "amount_received",
                            "amount_refunded",
                            "payment_intent",
                            "metadata",
                            "refunds",
                            "last_payment_error",
                            "next_action",
                        ]
                    ),
                    anything,
                )
            }
        )
        | anything,
    }
)
adyen_items = st.fixed_dictionaries(
    {
        "pspReference": st.text(max_size=16),
        "eventCode": st.sampled_from(
            ["AUTHORISATION", "CAPTURE", "CANCELLATION", "REFUND", "REFUND_FAILED", "CHARGEBACK"]
        ),
        "success": st.sampled_from(["true", "false", ""]),
        "amount": st.fixed_dictionaries({"value": st.integers(), "currency": st.text(max_size=4)}),
        "additionalData": st.dictionaries(st.text(max_size=30), anything, max_size=3),
    },
    optional={
        "originalReference": anything,
        "merchantReference": anything,
        "eventDate": anything,
        "reason": anything,
    },
)
adyen_bodies = st.lists(adyen_items, min_size=1, max_size=3).map(
    lambda items: {
        "live": "false",
        "notificationItems": [{"NotificationRequestItem": i} for i in items],
    }
)
paypal_events = st.fixed_dictionaries(
    {
        "id": anything,
        "event_type": st.sampled_from(
            [
                "PAYMENT.CAPTURE.COMPLETED",
                "PAYMENT.AUTHORIZATION.CREATED",
                "PAYMENT.CAPTURE.REFUNDED",
                "CHECKOUT.ORDER.APPROVED",
                "CUSTOMER.DISPUTE.CREATED",
            ]
        )
        | anything,
        "create_time": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"])
        | anything,
        "resource": st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "status",
                    "amount",
                    "custom_id",
                    "supplementary_data",
                    "purchase_units",
                    "disputed_transactions",
                    "dispute_amount",
                    "dispute_id",
                    "reason",
                ]
            ),
            anything,
        )
        | anything,
    }
)


@FUZZ
@given(psp=st.sampled_from(["stripe", "adyen", "paypal"]), data=st.data())
def test_a_signed_garbage_webhook_is_never_a_5xx(
    live: Server, psp: str, data: st.DataObject
) -> None:
    """A PSP we trust may still send what we do not expect: a 4xx or an ignored event."""
    if psp == "stripe":
        body = json.dumps(data.draw(stripe_events)).encode()
        headers = stripe_signed(live, body)
    elif psp == "adyen":
        body, headers = adyen_signed(live, data.draw(adyen_bodies)), {}
    else:
        body = json.dumps(data.draw(paypal_events)).encode()
        headers = paypal_signed(live, body)
    r = httpx.post(
        f"{live.base}/webhooks/{psp}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    if r.status_code != 200:
        assert_error_shape(r, 400)


# -- found by the fuzzer: the largest amounts ---------------------------------------------------


def test_the_largest_accepted_amount_does_not_break_the_fraud_checkpoint(tmp_path: Path) -> None:
    """The fraud engine's learned state is saved at shutdown (and every 5 minutes); one
    accepted payment near MAX_AMOUNT must not make that save fail from then on."""
    for server in start(tmp_path):
        with server.client() as http:
            r = http.post("/v1/payments", json={**GOOD, "amount": MAX_AMOUNT, "connector": "adyen"})
            assert r.status_code in (201, 402), describe(r)

    async def saved() -> bytes | None:
        store = SqliteStore(server.settings.sqlite_path)
        await store.open()
        try:
            return await store.get_blob(CHECKPOINT)
        finally:
            await store.close()

    assert asyncio.run(saved()) is not None, "the fraud checkpoint was not saved at shutdown"
