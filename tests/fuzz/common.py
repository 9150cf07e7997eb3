"""What both fuzz suites share: how big a run is, and what every error must look like.

The sizes come from the environment so that `make test` runs a small, CI-sized pass and
`make fuzz` a long one over the very same tests:

    PAYMESH_FUZZ_EXAMPLES   examples per generated test (default 25)
    PAYMESH_FUZZ_STEPS      steps per state-machine run (default 50)
    PAYMESH_FUZZ_RUNS       state-machine runs, each a fresh sequence (default 20)
    PAYMESH_FUZZ_SHRINK     1 to shrink a failing example (slow against a live server, and
                            its nondeterminism can make shrinking give up; off by default:
                            the failure is reported with the whole sequence that found it)
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from hypothesis import Phase

__all__ = [
    "EXAMPLES",
    "PHASES",
    "RUNS",
    "STEPS",
    "assert_error_shape",
    "assert_no_server_error",
    "describe",
]


def _size(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


EXAMPLES = _size("PAYMESH_FUZZ_EXAMPLES", 25)
STEPS = _size("PAYMESH_FUZZ_STEPS", 50)
RUNS = _size("PAYMESH_FUZZ_RUNS", 20)
PHASES = [p for p in Phase if p != Phase.shrink or _size("PAYMESH_FUZZ_SHRINK", 0)]


def describe(r: httpx.Response) -> str:
    """The request and the answer, as a bug report would quote them."""
    try:
        body = r.request.content
    except httpx.RequestNotRead:
        body = b"<streamed>"
    shown = body[:300] + (b"..." if len(body) > 300 else b"")
    return (
        f"{r.request.method} {r.request.url} body={shown!r}\n  -> {r.status_code} {r.text[:400]!r}"
    )


def assert_no_server_error(r: httpx.Response) -> None:
    """DESIGN.md invariant 7: no 5xx, except 503 psp_unavailable (never with the sandboxes).

    Reported without a Python traceback: the request and the answer are the report, and
    CPython 3.11 can crash pytest's traceback rendering (`SystemError: AST constructor
    recursion depth mismatch`) right after the server thread hit a RecursionError.
    """
    if r.status_code >= 500:
        pytest.fail(f"server error:\n{describe(r)}", pytrace=False)


def assert_error_shape(
    r: httpx.Response, status: int | tuple[int, ...] | None = None
) -> dict[str, Any]:
    """A 4xx in DESIGN.md's shape: {"error": {"type", "code", "message", "param"?}}."""
    assert_no_server_error(r)
    if status is not None:
        wanted = (status,) if isinstance(status, int) else status
        assert r.status_code in wanted, f"wanted {wanted}:\n{describe(r)}"
    assert 400 <= r.status_code < 500, f"wanted a 4xx:\n{describe(r)}"
    assert r.headers.get("content-type", "").startswith("application/json"), describe(r)
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), describe(r)
    error: dict[str, Any] = body["error"]
    for field in ("type", "code", "message"):
        assert isinstance(error.get(field), str) and error[field], (
            f"error.{field} missing:\n{describe(r)}"
        )
    assert "param" not in error or isinstance(error["param"], str), describe(r)
    return error
