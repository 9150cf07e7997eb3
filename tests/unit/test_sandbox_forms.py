"""Stripe's form encoding decodes back to what the official library encoded."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stripe._encode import _api_encode  # the encoder the stripe package sends with

from paymesh.sandbox.forms import FormError, parse_form


def stripe_encoded(params: dict[str, Any]) -> str:
    # As stripe's requestor does: indexed arrays, brackets left readable.
    return urlencode(list(_api_encode(params))).replace("%5B", "[").replace("%5D", "]")


def test_hashes_arrays_and_nesting() -> None:
    body = (
        b"amount=2000&metadata[order_id]=o-1&metadata[note]=a%20b"
        b"&payment_method_types[]=card&payment_method_types[]=link"
        b"&expand[0]=latest_charge&a[b][c]=v&items[0][sku]=s1&items[1][sku]=s2&blank="
    )
    assert parse_form(body) == {
        "amount": "2000",
        "metadata": {"order_id": "o-1", "note": "a b"},
        "payment_method_types": ["card", "link"],
        "expand": ["latest_charge"],
        "a": {"b": {"c": "v"}},
        "items": [{"sku": "s1"}, {"sku": "s2"}],
        "blank": "",
    }


def test_positions_may_arrive_out_of_order() -> None:
    assert parse_form("x[1]=b&x[0]=a") == {"x": ["a", "b"]}


def test_numbered_keys_that_are_not_an_array_stay_a_hash() -> None:
    assert parse_form("metadata[7]=z") == {"metadata": {"7": "z"}}
    assert parse_form("metadata[a]=1&metadata[0]=2") == {"metadata": {"a": "1", "0": "2"}}


def test_empty_body() -> None:
    assert parse_form(b"") == {}


@pytest.mark.parametrize(
    "body",
    ["a]=1", "[a]=1", "a[b=1", "a[b]c=1", "a[b]=1&a[b][c]=2", "a[0]=1&a[x]=2", "a=1&a[b]=2"],
)
def test_malformed_or_contradictory_keys_are_refused(body: str) -> None:
    with pytest.raises(FormError):
        parse_form(body)


keys = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
values = st.recursive(
    st.text(max_size=12),
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(keys, children, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(keys, values, max_size=5))
def test_round_trips_the_stripe_packages_encoding(params: dict[str, Any]) -> None:
    assert parse_form(stripe_encoded(params)) == params
