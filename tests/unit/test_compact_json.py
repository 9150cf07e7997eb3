"""The service writes JSON with the standard library, byte for byte as msgspec (the codec it
used before, and the one the HTTP edge and the stores use) writes it: a replay of a stored
reply, a delivery's signed body and an idempotency fingerprint kept before the change are the
same bytes after it."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paymesh.domain.payment import RiskContext
from paymesh.service import compact_json
from paymesh.service.idempotency import fingerprint
from paymesh.service.payments import CreatePayment
from paymesh.service.payments.create import request_fingerprint

# What the service encodes: views, event envelopes, error bodies, fingerprinted requests.
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text()
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@given(documents)
def test_writes_what_msgspec_writes(value: Any) -> None:
    assert compact_json.encode(value) == msgspec.json.encode(value)


@given(documents)
def test_sorted_writes_what_msgspec_writes_sorted(value: Any) -> None:
    assert compact_json.encode_sorted(value) == msgspec.json.encode(value, order="sorted")


@given(documents)
def test_reads_back_what_it_wrote(value: Any) -> None:
    assert compact_json.decode(compact_json.encode(value)) == value


@dataclass(frozen=True)
class _Inner:
    zeta: str
    alpha: int | None = None


@dataclass(frozen=True)
class _Outer:
    name: str
    inner: _Inner
    tags: dict[str, str] = field(default_factory=dict)


def test_sorts_dataclass_fields_as_msgspec_does() -> None:
    value = {"op": "x", "req": _Outer("n", _Inner("z"), {"b": "1", "a": "2"})}
    assert compact_json.encode_sorted(value) == msgspec.json.encode(value, order="sorted")
    assert compact_json.encode_sorted(value) == (
        b'{"op":"x","req":{"inner":{"alpha":null,"zeta":"z"},"name":"n","tags":{"a":"2","b":"1"}}}'
    )


@given(
    amount=st.integers(1, 10**9),
    currency=st.sampled_from(["usd", "eur", "jpy"]),
    customer=st.text(min_size=1),
    method=st.text(min_size=1),
    connector=st.none() | st.sampled_from(["stripe", "adyen"]),
    description=st.none() | st.text(),
    metadata=st.dictionaries(st.text(max_size=40), st.text(max_size=50), max_size=4),
    country=st.none() | st.text(max_size=2),
)
def test_a_create_payment_fingerprint_is_the_one_kept_before(
    amount: int,
    currency: str,
    customer: str,
    method: str,
    connector: str | None,
    description: str | None,
    metadata: dict[str, str],
    country: str | None,
) -> None:
    req = CreatePayment(
        amount=amount,
        currency=currency,
        customer_id=customer,
        payment_method=method,
        connector=connector,
        description=description,
        metadata=metadata,
        risk=RiskContext(country=country),
    )
    before = hashlib.sha256(
        msgspec.json.encode({"op": "create_payment", "req": req}, order="sorted")
    ).hexdigest()
    assert fingerprint("create_payment", req) == before


@given(
    metadata=st.dictionaries(st.text(max_size=40), st.text(max_size=50), max_size=4),
    device=st.none() | st.text(max_size=20),
    email=st.none() | st.emails(),
    phone=st.none() | st.sampled_from(["+15555550100", "+447700900123"]),
    capture=st.sampled_from(["automatic", "manual"]),
)
def test_a_create_request_hashes_as_its_whole_dataclass_did(
    metadata: dict[str, str], device: str | None, email: str | None, phone: str | None, capture: str
) -> None:
    """request_fingerprint builds its dict by hand: the hash must be the one a key stored
    before kept (asdict of the command, receipt fields left out when not given)."""
    req = CreatePayment(
        amount=1999,
        currency="eur",
        customer_id="cus_1",
        payment_method="pm_card_visa",
        capture_method=capture,
        metadata=metadata,
        risk=RiskContext(device_id=device, ip_address="10.1.2.3"),
        receipt_email=email,
        receipt_phone=phone,
    )
    whole = dataclasses.asdict(req)
    for name in ("receipt_email", "receipt_phone"):
        if whole[name] is None:
            del whole[name]
    assert request_fingerprint(req) == fingerprint("create_payment", whole)


def test_refuses_what_is_not_json() -> None:
    with pytest.raises(ValueError):
        compact_json.encode({"score": float("nan")})
    with pytest.raises(TypeError):
        compact_json.encode_sorted({"at": object()})
