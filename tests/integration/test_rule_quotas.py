"""A merchant's rules keep EventBridge's own quotas: 300 rules, 2,048-character patterns,
five targets per rule (issue 12, item 7). Real server, real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from paymesh.service.rule_definitions import MAX_PATTERN_CHARS, MAX_RULES
from tests.integration.conftest import Server, start

TARGETS = [{"id": "t", "type": "builtin", "name": "analytics"}]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start(tmp_path_factory.mktemp("rule-quotas"))


def pattern_of(chars: int) -> dict[str, Any]:
    """An event pattern whose compact JSON is exactly `chars` characters."""
    skeleton = len(msgspec.json.encode({"source": [""]}))
    return {"source": ["x" * (chars - skeleton)]}


def own_rules(server: Server, key: str | None = None) -> list[str]:
    with server.client(key) as http:
        return [r["name"] for r in http.get("/v1/rules").json()["data"] if not r["default"]]


def test_the_rule_after_the_300th_is_refused_until_one_is_deleted(shared: Server) -> None:
    assert MAX_RULES == 300
    rule = {"event_pattern": {"source": ["paymesh"]}, "targets": TARGETS}
    with shared.client() as http:
        for i in range(MAX_RULES):
            assert http.put(f"/v1/rules/r{i}", json=rule).status_code == 200
        r = http.put("/v1/rules/one-too-many", json=rule)
        assert r.status_code == 400
        assert r.json() == {
            "error": {
                "type": "invalid_request_error",
                "code": "rule_limit_exceeded",
                "message": "a merchant has at most 300 rules of its own (EventBridge's quota per "
                "event bus); delete one, or replace one by its name",
                "param": "name",
            }
        }
        assert "one-too-many" not in own_rules(shared)
        # Replacing a rule adds none: allowed at the limit.
        replaced = http.put("/v1/rules/r7", json={**rule, "state": "DISABLED"})
        assert (replaced.status_code, replaced.json()["state"]) == (200, "DISABLED")
        # The quota is per merchant: another one is not affected.
        with shared.client(shared.other_key) as other:
            assert other.put("/v1/rules/mine", json=rule).status_code == 200
        assert http.delete("/v1/rules/r0").status_code == 200
        assert http.put("/v1/rules/one-too-many", json=rule).status_code == 200
    assert len(own_rules(shared)) == MAX_RULES


def test_a_pattern_over_2048_characters_is_refused(shared: Server) -> None:
    assert MAX_PATTERN_CHARS == 2048
    with shared.client(shared.other_key) as http:
        at_limit = http.put(
            "/v1/rules/big", json={"event_pattern": pattern_of(2048), "targets": TARGETS}
        )
        assert at_limit.status_code == 200, at_limit.text
        r = http.put(
            "/v1/rules/too-big", json={"event_pattern": pattern_of(2049), "targets": TARGETS}
        )
        assert r.status_code == 400
        assert r.json() == {
            "error": {
                "type": "invalid_request_error",
                "code": "event_pattern_too_large",
                "message": "the event pattern is 2049 characters; EventBridge's limit, kept here, "
                "is 2048",
                "param": "event_pattern",
            }
        }
        # TestEventPattern refuses what could not be stored.
        r = http.post(
            "/v1/rules/test", json={"event_pattern": pattern_of(2049), "event": {"source": "x"}}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "event_pattern_too_large")
    assert "too-big" not in own_rules(shared, shared.other_key)


def test_white_space_in_a_pattern_does_not_count(shared: Server) -> None:
    pattern = pattern_of(2048)
    body = (
        b'{"targets": '
        + msgspec.json.encode(TARGETS)
        + b', "event_pattern": '
        + msgspec.json.format(msgspec.json.encode(pattern), indent=8)
        + b"}"
    )
    with shared.client(shared.other_key) as http:
        r = http.put("/v1/rules/spaced", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_more_than_five_targets_is_refused(shared: Server) -> None:
    targets = [{"id": f"t{i}", "type": "builtin", "name": "analytics"} for i in range(6)]
    with shared.client(shared.other_key) as http:
        assert (
            http.put(
                "/v1/rules/five", json={"event_pattern": {"source": ["x"]}, "targets": targets[:5]}
            ).status_code
            == 200
        )
        r = http.put("/v1/rules/six", json={"event_pattern": {"source": ["x"]}, "targets": targets})
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_invalid",
            "message": "Expected `array` of length <= 5 - at `$.targets`",
            "param": "targets",
        }
    }
    assert "six" not in own_rules(shared, shared.other_key)
