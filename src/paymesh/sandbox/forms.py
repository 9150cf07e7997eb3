"""Stripe's form encoding, decoded into plain dicts and lists.

Stripe's v1 API takes `application/x-www-form-urlencoded` bodies in which
nesting is written into the key: `metadata[order_id]=o-1` is a hash,
`payment_method_types[]=card` and `payment_method_types[0]=card` are arrays,
`a[b][c]=v` nests further. The official libraries always index arrays
(`expand[0]=x`); curl users write `expand[]=x`; both must mean the same.

Values stay strings: only the endpoint knows whether `amount` is an integer or
`confirm` a boolean, and it reports Stripe's own error when one is not.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

__all__ = ["FormError", "parse_form"]

FormValue = str | list[Any] | dict[str, Any]


class FormError(ValueError):
    """A key whose nesting cannot be decoded, or contradicts an earlier key."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


class _Positions(dict[str, Any]):
    """An array under construction: keys are positions, turned into a list at the end.

    Positions are collected first because `a[1]` may arrive before `a[0]`. Only
    positions 0..n-1 make a list; `metadata[7]=x` alone stays the hash {"7": "x"},
    as the key may well be a hash key that happens to be a number.
    """


def parse_form(body: bytes | str) -> dict[str, Any]:
    """Decode a form body (or query string) into nested dicts, lists and strings."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    root: dict[str, Any] = {}
    if not text:
        return root
    for key, value in parse_qsl(text, keep_blank_values=True):
        name, path = _split_key(key)
        _assign(root, name, path, value)
    return _finish(root)


def _split_key(key: str) -> tuple[str, list[str]]:
    """`a[b][]` -> ("a", ["b", ""]); a key without brackets has an empty path."""
    open_at = key.find("[")
    if open_at <= 0:
        if "]" in key or open_at == 0:
            raise FormError(f"Invalid parameter name: {key}", key)
        return key, []
    name, rest = key[:open_at], key[open_at:]
    path: list[str] = []
    while rest:
        close_at = rest.find("]")
        if not rest.startswith("[") or close_at < 0:
            raise FormError(f"Invalid parameter name: {key}", name)
        path.append(rest[1:close_at])
        rest = rest[close_at + 1 :]
    return name, path


def _assign(root: dict[str, Any], name: str, path: list[str], value: str) -> None:
    node: dict[str, Any] = root
    segment = name
    for step in path:
        wants_array = step == "" or step.isdigit()
        child = node.get(segment)
        if child is None or isinstance(child, str):
            if isinstance(child, str) and child != "":
                raise FormError(f"Invalid {'array' if wants_array else 'hash'}", name)
            child = _Positions() if wants_array else {}
            node[segment] = child
        elif isinstance(child, _Positions) and not wants_array:
            raise FormError("Invalid array", name)
        node = child
        segment = str(len(node)) if step == "" else step
    existing = node.get(segment)
    if isinstance(existing, dict) and existing:
        kind = "array" if isinstance(existing, _Positions) else "hash"
        raise FormError(f"Invalid {kind}", name)
    node[segment] = value


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    for key, child in node.items():
        if isinstance(child, dict):
            node[key] = (
                _finish_positions(child) if isinstance(child, _Positions) else _finish(child)
            )
    return node


def _finish_positions(positions: _Positions) -> list[Any] | dict[str, Any]:
    finished = _finish(dict(positions))
    if all(str(i) in finished for i in range(len(finished))):
        return [finished[str(i)] for i in range(len(finished))]
    return finished
