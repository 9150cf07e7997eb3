"""Scoring rules as data, compiled once into plain closures (no eval).

A rule set is a JSON object::

    {"review_threshold": 70, "block_threshold": 80,
     "lists": {"block": {"country": ["KP"]}, "allow": {"customer_id": ["c-1"]}},
     "rules": [{"name": "...", "when": COND, "weight": 25, "factor": "..."}]}

COND is ``[feature, op, number]`` with op one of < <= > >= == !=, or
``{"all": [COND, ...]}`` / ``{"any": [COND, ...]}``. A feature absent for a
transaction (no history yet) makes its comparison false. List hits appear as the
features ``block_listed`` / ``allow_listed`` (1 when any field is listed).
Score = sum of the weights of the rules that hold, clamped to 0..100.

A rule with ``"override": true`` (the packaged ones on the allow and block lists, and any
hard limit of your own) keeps its say beside a learned model: their weight is a floor under
the model's score (or, negative, comes off it), where the other rules only inform the model
(see `FraudEngine.combine`).
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from paymesh.domain.payment import FraudAssessment
from paymesh.fraud.transactions import Transaction

Condition = Callable[[Mapping[str, float]], bool]
# A comparison a rule's condition cannot hold without: (feature, operator, number).
Gate = tuple[str, Callable[[float, float], bool], float]


def _gt(name: str, value: float) -> Condition:
    return lambda f: (x := f.get(name)) is not None and x > value


def _ge(name: str, value: float) -> Condition:
    return lambda f: (x := f.get(name)) is not None and x >= value


def _lt(name: str, value: float) -> Condition:
    return lambda f: (x := f.get(name)) is not None and x < value


def _le(name: str, value: float) -> Condition:
    return lambda f: (x := f.get(name)) is not None and x <= value


def _eq(name: str, value: float) -> Condition:
    return lambda f: f.get(name) == value


def _ne(name: str, value: float) -> Condition:
    return lambda f: (x := f.get(name)) is not None and x != value


# One closure per operator: an inline comparison is cheaper than calling operator.gt.
_COMPARE = {">": _gt, ">=": _ge, "<": _lt, "<=": _le, "==": _eq, "!=": _ne}
_OPERATORS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
LIST_FIELDS = ("customer_id", "card_fingerprint", "device_id", "ip_address", "country")


class RuleError(ValueError):
    """Rule data that cannot be compiled; the message gives the path to the bad part."""


def compile_condition(spec: Any, where: str = "when") -> Condition:
    if isinstance(spec, list):
        if len(spec) != 3 or not isinstance(spec[0], str) or spec[1] not in _COMPARE:
            raise RuleError(
                f"{where}: expected [feature, op, number] with op in {sorted(_COMPARE)}"
            )
        if isinstance(spec[2], bool) or not isinstance(spec[2], int | float):
            raise RuleError(f"{where}: {spec[2]!r} is not a number")
        return _COMPARE[spec[1]](spec[0], float(spec[2]))
    if isinstance(spec, dict) and len(spec) == 1:
        ((key, parts),) = spec.items()
        if key in ("all", "any") and isinstance(parts, list) and parts:
            subs = tuple(compile_condition(p, f"{where}.{key}[{i}]") for i, p in enumerate(parts))
            if all(isinstance(p, list) for p in parts):
                return _flat(key, tuple((p[0], _OPERATORS[p[1]], float(p[2])) for p in parts))
            # Plain loops: a generator per call costs more than the comparisons themselves.
            if key == "all":

                def all_of(f: Mapping[str, float]) -> bool:
                    for c in subs:  # noqa: SIM110 - faster than all(<generator>)
                        if not c(f):
                            return False
                    return True

                return all_of

            def any_of(f: Mapping[str, float]) -> bool:
                for c in subs:  # noqa: SIM110 - faster than any(<generator>)
                    if c(f):
                        return True
                return False

            return any_of
    raise RuleError(f"{where}: expected [feature, op, number] or {{'all'|'any': [...]}}")


def _flat(key: str, leaves: tuple[Gate, ...]) -> Condition:
    """`all` / `any` of plain comparisons, in one loop: no call per comparison but the
    operator's own (C) one. An absent feature fails its comparison, as in `_gt` & co."""
    if key == "all":

        def all_leaves(f: Mapping[str, float]) -> bool:
            get = f.get
            for name, op, value in leaves:
                if (x := get(name)) is None or not op(x, value):
                    return False
            return True

        return all_leaves

    def any_leaves(f: Mapping[str, float]) -> bool:
        get = f.get
        for name, op, value in leaves:  # noqa: SIM110 - faster than any(<generator>)
            if (x := get(name)) is not None and op(x, value):
                return True
        return False

    return any_leaves


def gate_of(spec: Any) -> Gate | None:
    """A comparison that `spec` (already compiled once, so valid) cannot hold without.

    Most rules are false most of the time, at their first comparison: checking it
    inline skips the calls into the compiled condition.
    """
    if isinstance(spec, list):
        return spec[0], _OPERATORS[spec[1]], float(spec[2])
    ((key, parts),) = spec.items()
    if key == "all":
        for part in parts:
            if isinstance(part, list):
                return gate_of(part)
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    condition: Condition
    weight: int
    factor: str
    gate: Gate | None = None  # implied by `condition`, checked first
    override: bool = False  # keeps its say beside a model's score (see the module doc)


class RuleSet:
    def __init__(
        self,
        rules: list[Rule],
        review_threshold: int = 70,
        block_threshold: int = 80,
        lists: Mapping[str, Mapping[str, frozenset[str]]] | None = None,
    ) -> None:
        if not 0 <= review_threshold <= block_threshold <= 100:
            raise RuleError("thresholds: need 0 <= review_threshold <= block_threshold <= 100")
        self.rules = tuple(rules)
        self._plan = tuple((r.gate, r.condition, r.weight, r.factor) for r in self.rules)
        # An overriding rule's factor is its name in an assessment: weight by factor, so the
        # engine reads what overrode from the assessment instead of evaluating them again.
        self._override_weights = {r.factor: r.weight for r in self.rules if r.override}
        shared = [r.factor for r in self.rules if r.factor in self._override_weights]
        if len(shared) != len(self._override_weights):
            raise RuleError("override: an overriding rule's factor must be its own")
        self.review_threshold = review_threshold
        self.block_threshold = block_threshold
        self.lists = {kind: dict((lists or {}).get(kind, {})) for kind in ("block", "allow")}

    @classmethod
    def from_data(cls, data: Any) -> RuleSet:
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise RuleError("rule set: expected an object with a 'rules' list")
        rules = []
        for i, item in enumerate(data["rules"]):
            where = f"rules[{i}]"
            keys = {"name", "when", "weight", "factor"}
            if not isinstance(item, dict) or not keys <= set(item) <= keys | {"override"}:
                raise RuleError(f"{where}: expected name, when, weight, factor (and override)")
            if not isinstance(item.get("override", False), bool):
                raise RuleError(f"{where}.override: expected true or false")
            if not isinstance(item["weight"], int) or isinstance(item["weight"], bool):
                raise RuleError(f"{where}.weight: expected an integer")
            if not isinstance(item["name"], str) or not isinstance(item["factor"], str):
                raise RuleError(f"{where}: name and factor must be strings")
            rules.append(
                Rule(
                    item["name"],
                    compile_condition(item["when"], f"{where}.when"),
                    item["weight"],
                    item["factor"],
                    gate_of(item["when"]),
                    item.get("override", False),
                )
            )
        lists: dict[str, dict[str, frozenset[str]]] = {}
        for kind, fields in (data.get("lists") or {}).items():
            if kind not in ("block", "allow") or not isinstance(fields, dict):
                raise RuleError(f"lists.{kind}: expected 'block' or 'allow' with an object")
            for field, values in fields.items():
                if field not in LIST_FIELDS or not isinstance(values, list):
                    raise RuleError(f"lists.{kind}.{field}: expected one of {LIST_FIELDS} -> list")
                lists.setdefault(kind, {})[field] = frozenset(str(v) for v in values)
        review, block = data.get("review_threshold", 70), data.get("block_threshold", 80)
        if not isinstance(review, int) or not isinstance(block, int):
            raise RuleError("thresholds: expected integers")
        return cls(rules, review, block, lists)

    @classmethod
    def from_json(cls, text: str) -> RuleSet:
        try:
            return cls.from_data(json.loads(text))
        except json.JSONDecodeError as exc:
            raise RuleError(f"rule set: invalid JSON: {exc}") from exc

    @classmethod
    def load(cls, path: Path | None) -> RuleSet:
        """The rule set in the file at `path` (a `PAYMESH_FRAUD_RULES`), or the packaged one."""
        return cls.from_json(path.read_text()) if path else cls.default()

    @classmethod
    def default(cls) -> RuleSet:
        text = resources.files("paymesh.fraud").joinpath("default_fraud_rules.json").read_text()
        return cls.from_json(text)

    def list_hits(self, txn: Transaction, features: dict[str, float]) -> None:
        for kind, fields in self.lists.items():
            for field, values in fields.items():
                if getattr(txn, field) in values:
                    features[f"{kind}_listed"] = 1.0

    def overrides(self, ruled: FraudAssessment) -> tuple[int, tuple[str, ...]]:
        """The summed weight and the factors of the overriding rules that held in `ruled`
        (this rule set's `assess`)."""
        hits = tuple(f for f in ruled.factors if f in self._override_weights)
        return sum(self._override_weights[f] for f in hits), hits

    def decide(self, score: int) -> str:
        if score > self.block_threshold:
            return "block"
        return "review" if score > self.review_threshold else "allow"

    def assess(self, features: Mapping[str, float]) -> FraudAssessment:
        total, factors = 0, []
        get = features.get
        for gate, condition, weight, factor in self._plan:
            # An absent feature fails any comparison, as in the compiled condition.
            if gate is not None and ((x := get(gate[0])) is None or not gate[1](x, gate[2])):
                continue
            if condition(features):
                total += weight
                factors.append(factor)
        score = max(0, min(100, total))
        return FraudAssessment(score=score, factors=tuple(factors), decision=self.decide(score))
