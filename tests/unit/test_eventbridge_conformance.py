"""The shared EventBridge conformance corpus, one test per case.

The corpus (773 labelled pattern/event pairs and 54 invalid patterns, drawn from
event-ruler's own tests) lives beside the checkout in
``shared/conformance/eventbridge/`` (see tests/support/conformance.py). Every case
runs through TestEventPattern and through a one-rule RuleSet, so the indexed matcher
is held to the same answers. Without the folder the cases skip, and the run ends
with one line saying how many and why; in CI they fail instead. A final test checks
the counts so a truncated corpus cannot pass quietly.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import pytest

from paymesh import rules
from paymesh.rules import InvalidEventPattern, RuleSet
from tests.support.conformance import (
    EXPECTED_CASES,
    EXPECTED_INVALID,
    MISSING_IDS,
    corpus_dir,
    missing,
    required,
)

CORPUS = corpus_dir()

# Cases whose label cannot be reproduced, with the reason. Each is an xfail(strict),
# so fixing the behaviour (or the label) makes the run say so. None so far.
KNOWN_DIVERGENCES: dict[str, str] = {}


def _load(name: str) -> list[dict[str, Any]]:
    path = CORPUS / name
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


MATCH_CASES = _load("corpus.jsonl")
INVALID_CASES = _load("invalid.jsonl")


def _absent() -> NoReturn:
    """Without the corpus each test is one placeholder that skips (one line in the summary:
    the same reason from the same place), unless this run must have it (CI): then it fails."""
    if why := required():
        pytest.fail(f"the EventBridge conformance corpus is required ({why}): {missing(CORPUS)}")
    pytest.skip(missing(CORPUS))


def _match_params() -> list[Any]:
    if not MATCH_CASES:
        return [pytest.param(None, id=MISSING_IDS[0])]
    params = []
    for case in MATCH_CASES:
        reason = KNOWN_DIVERGENCES.get(case["id"])
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


def _invalid_params() -> list[Any]:
    if not INVALID_CASES:
        return [pytest.param(None, id=MISSING_IDS[1])]
    return [
        pytest.param(case, id=f"invalid-{number:02d}") for number, case in enumerate(INVALID_CASES)
    ]


@pytest.mark.parametrize("case", _match_params())
def test_corpus_case(case: dict[str, Any] | None) -> None:
    if case is None:
        _absent()
    pattern, event, expected = case["pattern"], case["event"], case["match"]
    assert rules.test_event_pattern(pattern, event) is expected, case["source"]
    ruleset: RuleSet[str] = RuleSet()
    ruleset.add(case["id"], pattern, case["id"])
    assert ruleset.matching(event) == ([case["id"]] if expected else []), case["source"]


@pytest.mark.parametrize("case", _invalid_params())
def test_invalid_pattern_is_rejected(case: dict[str, Any] | None) -> None:
    if case is None:
        _absent()
    with pytest.raises(InvalidEventPattern):
        rules.compile_pattern(case["pattern"])
    with pytest.raises(InvalidEventPattern):
        rules.test_event_pattern(json.dumps(case["pattern"]), {})


def test_the_whole_corpus_was_found() -> None:
    if not CORPUS.is_dir():
        _absent()
    print(  # shown with -s / -rP: how much was exercised
        f"conformance: {len(MATCH_CASES)} labelled cases "
        f"({len(KNOWN_DIVERGENCES)} known divergences), {len(INVALID_CASES)} invalid patterns"
    )
    assert len(MATCH_CASES) >= EXPECTED_CASES
    assert len(INVALID_CASES) >= EXPECTED_INVALID
    assert len({case["id"] for case in MATCH_CASES}) == len(MATCH_CASES), "ids are unique"
    assert set(KNOWN_DIVERGENCES) <= {case["id"] for case in MATCH_CASES}
