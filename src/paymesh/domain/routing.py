"""Which PSP takes a payment: a merchant's routing table, as data, evaluated without I/O.

A table is a list of routes tried in order; the first whose conditions all hold gives the
PSPs to use, in failover order, optionally with weights that split traffic over them (the
weighted pick becomes the first choice, the rest keep their order as fallbacks). No route
matching means the table's default order. The pick is a hash of the payment id, so the same
payment always gets the same order: a retried request routes exactly as the first did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class InvalidRoutingTable(ValueError):
    """The message says which route and which field is wrong."""


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    amount: int
    currency: str  # lower case
    country: str | None
    payment_method_type: str  # card | paypal


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    connectors: tuple[str, ...]
    currencies: frozenset[str] | None = None
    countries: frozenset[str] | None = None
    payment_method_types: frozenset[str] | None = None
    amount_gte: int | None = None
    amount_lt: int | None = None
    weights: Mapping[str, int] | None = None
    retry_soft_declines: bool = False

    def matches(self, facts: PaymentFacts) -> bool:
        return (
            (self.currencies is None or facts.currency in self.currencies)
            and (self.countries is None or (facts.country or "").upper() in self.countries)
            and (
                self.payment_method_types is None
                or facts.payment_method_type in self.payment_method_types
            )
            and (self.amount_gte is None or facts.amount >= self.amount_gte)
            and (self.amount_lt is None or facts.amount < self.amount_lt)
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The PSPs to try, first choice first, and the route that chose them."""

    connectors: tuple[str, ...]
    route: str
    retry_soft_declines: bool = False


@dataclass(frozen=True, slots=True)
class RoutingTable:
    routes: tuple[Route, ...] = ()
    default: tuple[str, ...] = ()
    doc: Mapping[str, Any] = field(default_factory=dict)  # as the merchant wrote it

    def decide(self, facts: PaymentFacts, payment_id: str) -> Decision:
        for route in self.routes:
            if route.matches(facts):
                order = route.connectors
                if route.weights:
                    first = _weighted_pick(route.weights, payment_id)
                    order = (first, *(c for c in order if c != first))
                return Decision(order, route.name, route.retry_soft_declines)
        return Decision(self.default, "default")


def _weighted_pick(weights: Mapping[str, int], payment_id: str) -> str:
    total = sum(weights.values())
    point = int.from_bytes(hashlib.sha256(payment_id.encode()).digest()[:8], "big") % total
    for connector, weight in sorted(weights.items()):
        if point < weight:
            return connector
        point -= weight
    raise AssertionError("weights cover the total")


def method_type(payment_method: str) -> str:
    """A wallet token names its wallet; every other token is a card in the vault."""
    return "paypal" if payment_method.startswith(("paypal", "pm_paypal")) else "card"


_ROUTE_FIELDS = {
    "name",
    "connectors",
    "currency",
    "country",
    "payment_method_type",
    "amount_gte",
    "amount_lt",
    "weights",
    "retry_soft_declines",
}


def parse_table(doc: Any, known: Iterable[str]) -> RoutingTable:
    """Check and compile a table document against the configured connectors."""
    known_set = set(known)
    if not isinstance(doc, dict) or set(doc) - {"routes", "default"}:
        raise InvalidRoutingTable("a routing table is an object with 'routes' and 'default'")
    default = _connectors(doc.get("default", []), known_set, "default", allow_empty=True)
    routes = []
    raw_routes = doc.get("routes", [])
    if not isinstance(raw_routes, list):
        raise InvalidRoutingTable("routes: expected a list")
    names: set[str] = set()
    for i, raw in enumerate(raw_routes):
        where = f"routes[{i}]"
        if not isinstance(raw, dict):
            raise InvalidRoutingTable(f"{where}: expected an object")
        unknown = set(raw) - _ROUTE_FIELDS
        if unknown:
            raise InvalidRoutingTable(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        name = raw.get("name", f"route-{i}")
        if not isinstance(name, str) or not name or name in names:
            raise InvalidRoutingTable(f"{where}.name: a unique non-empty string")
        names.add(name)
        connectors = _connectors(raw.get("connectors"), known_set, f"{where}.connectors")
        weights = raw.get("weights")
        if weights is not None and (
            not isinstance(weights, dict)
            or not weights
            or any(c not in connectors for c in weights)
            or any(type(w) is not int or w < 0 for w in weights.values())
            or sum(weights.values()) <= 0
        ):
            raise InvalidRoutingTable(
                f"{where}.weights: non-negative integers for some of "
                "the route's connectors, not all zero"
            )
        gte, lt = raw.get("amount_gte"), raw.get("amount_lt")
        for label, value in (("amount_gte", gte), ("amount_lt", lt)):
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidRoutingTable(f"{where}.{label}: a non-negative integer")
        if gte is not None and lt is not None and gte >= lt:
            raise InvalidRoutingTable(f"{where}: amount_gte must be below amount_lt")
        soft = raw.get("retry_soft_declines", False)
        if not isinstance(soft, bool):
            raise InvalidRoutingTable(f"{where}.retry_soft_declines: true or false")
        routes.append(
            Route(
                name=name,
                connectors=connectors,
                currencies=_strings(raw.get("currency"), f"{where}.currency", str.lower),
                countries=_strings(raw.get("country"), f"{where}.country", str.upper),
                payment_method_types=_strings(
                    raw.get("payment_method_type"), f"{where}.payment_method_type", str.lower
                ),
                amount_gte=gte,
                amount_lt=lt,
                weights=weights,
                retry_soft_declines=soft,
            )
        )
    return RoutingTable(tuple(routes), default, doc)


def _connectors(
    value: Any, known: set[str], where: str, allow_empty: bool = False
) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or (not value and not allow_empty)
        or any(not isinstance(c, str) for c in value)
        or len(set(value)) != len(value)
    ):
        raise InvalidRoutingTable(f"{where}: a list of distinct connector names")
    unknown = [c for c in value if c not in known]
    if unknown:
        raise InvalidRoutingTable(
            f"{where}: unknown connector(s) {', '.join(unknown)}; "
            f"configured: {', '.join(sorted(known))}"
        )
    return tuple(value)


def _strings(value: Any, where: str, norm: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(not isinstance(v, str) for v in value):
        raise InvalidRoutingTable(f"{where}: a non-empty list of strings")
    return frozenset(norm(v) for v in value)


def default_table(order: Sequence[str]) -> RoutingTable:
    return RoutingTable((), tuple(order), {"routes": [], "default": list(order)})
