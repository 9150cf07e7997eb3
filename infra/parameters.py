"""The stack's parameters and their defaults (light: no CDK, so a cache hit loads none)."""

from __future__ import annotations

from typing import Any

DEFAULT_PREFIX = "paymesh"
DEFAULT_REVIEW_TIMEOUT_SECONDS = 259_200  # three days
DEFAULT_RETRY_BASE_SECONDS = 60

#: Name -> type (CDK context values may arrive as strings) and default.
PARAMETERS: dict[str, tuple[type, Any]] = {
    "prefix": (str, DEFAULT_PREFIX),
    "review_timeout_seconds": (int, DEFAULT_REVIEW_TIMEOUT_SECONDS),
    "retry_base_seconds": (int, DEFAULT_RETRY_BASE_SECONDS),
}


def parameters(**params: Any) -> dict[str, Any]:
    """The stack's parameters with their defaults filled in (so that two calls meaning
    the same stack share a cache entry)."""
    unknown = set(params) - set(PARAMETERS)
    if unknown:
        raise TypeError(f"unknown stack parameters: {sorted(unknown)}")
    return {name: params.get(name, default) for name, (_, default) in PARAMETERS.items()}
