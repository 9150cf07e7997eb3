"""Where the shared EventBridge conformance corpus is, and what a run does without it.

The corpus lives outside this repository, beside the checkout in
``shared/conformance/eventbridge/`` (or wherever PAYMESH_CONFORMANCE_DIR points). A developer's
run without it skips its cases and says so in one line at the end; CI (``CI=true``, which CI
runners set, or ``PAYMESH_REQUIRE_CONFORMANCE=1``, which ``.ci/run`` sets) fails instead, so
the cases can never quietly stop running there.
"""

from __future__ import annotations

import os
from pathlib import Path

#: What the corpus holds today; a smaller corpus fails `test_the_whole_corpus_was_found`.
EXPECTED_CASES = 773
EXPECTED_INVALID = 54
#: The ids of the single placeholder test each parametrized test gets when the corpus is absent.
MISSING_IDS = ("corpus-missing", "invalid-missing")


def corpus_dir() -> Path:
    if override := os.environ.get("PAYMESH_CONFORMANCE_DIR"):
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "conformance" / "eventbridge"


def required() -> str | None:
    """Why this run must have the corpus (the variable that says so), or None."""
    if os.environ.get("PAYMESH_REQUIRE_CONFORMANCE", "").strip() not in ("", "0"):
        return "PAYMESH_REQUIRE_CONFORMANCE is set"
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return "CI is set"
    return None


def missing(corpus: Path) -> str:
    """The one line saying what was not run and why."""
    return (
        f"{EXPECTED_CASES + EXPECTED_INVALID} cases ({EXPECTED_CASES} labelled "
        f"pattern/event pairs, {EXPECTED_INVALID} invalid patterns) not run: no corpus "
        f"at {corpus}"
    )
