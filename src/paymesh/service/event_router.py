"""The event router: which targets an event goes to, every enabled rule compiled into one
RuleSet.

Default rules (merchant "*", from the default rules file) apply to every merchant unless the
merchant has a rule of the same name, which overrides it (to change or disable it). A
merchant's own rules see only that merchant's events.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from paymesh.ports.bus import DEFAULT, Rule, RuleTarget
from paymesh.rules import RuleSet, compile_pattern

log = logging.getLogger(__name__)


class RuleSource(Protocol):
    async def rules(self) -> list[Rule]: ...


class Router:
    """Implements `paymesh.ports.bus.EventRouter`; keeps the rules the API changes."""

    def __init__(self, defaults: list[Rule]) -> None:
        self._initial = list(defaults)
        self._synced: list[Rule] = []
        self._reset()

    def _reset(self) -> None:
        """The default rules only."""
        self._defaults = {r.name: r for r in self._initial}
        self._own: dict[tuple[str, str], Rule] = {}
        self._set: RuleSet[Rule] = RuleSet()
        self._indexed: set[str] = set()  # keys of the rules now in the RuleSet
        for rule in self._initial:
            self._index(rule)

    @staticmethod
    def _key(rule: Rule) -> str:
        return f"{rule.merchant_id}\x00{rule.name}"

    def _index(self, rule: Rule) -> None:
        """Put an enabled rule in the RuleSet (replacing its old form); take a disabled out."""
        key = self._key(rule)
        if rule.state == "ENABLED":
            self._set.add(key, rule.event_pattern, rule)
            self._indexed.add(key)
        elif key in self._indexed:
            self._set.remove(key)
            self._indexed.discard(key)

    @staticmethod
    def validate(rule: Rule) -> None:
        """Raises InvalidEventPattern: a rule is refused before it is stored."""
        compile_pattern(rule.event_pattern)

    def load(self, stored: list[Rule]) -> None:
        for rule in stored:
            self.put(rule)
        self._synced = sorted(stored, key=self._key)

    def sync(self, stored: list[Rule]) -> bool:
        """Make the rules the defaults plus exactly `stored` (rules another process changed);
        False, and nothing recompiled, when they already are."""
        stored = sorted(stored, key=self._key)
        if stored == self._synced:
            return False
        self._reset()
        self.load(stored)
        return True

    def put(self, rule: Rule) -> None:
        self.validate(rule)
        if rule.merchant_id == DEFAULT:
            self._defaults[rule.name] = rule
        else:
            self._own[(rule.merchant_id, rule.name)] = rule
        self._index(rule)

    def delete(self, merchant_id: str, name: str) -> None:
        rule = self._own.pop((merchant_id, name), None)
        if rule is not None and self._key(rule) in self._indexed:
            self._set.remove(self._key(rule))
            self._indexed.discard(self._key(rule))

    def get(self, merchant_id: str, name: str) -> Rule | None:
        return self._own.get((merchant_id, name)) or self._defaults.get(name)

    def own(self, merchant_id: str, name: str) -> Rule | None:
        """The merchant's own rule of that name, not a default one."""
        return self._own.get((merchant_id, name))

    def rules_for(self, merchant_id: str) -> list[Rule]:
        merged = {name: rule for name, rule in self._defaults.items()}
        merged.update({name: r for (m, name), r in self._own.items() if m == merchant_id})
        return [merged[name] for name in sorted(merged)]

    def is_default(self, rule: Rule) -> bool:
        return rule.merchant_id == DEFAULT

    def routes(self, envelope: dict[str, Any]) -> list[RuleTarget]:
        account = envelope.get("account")
        out: list[RuleTarget] = []
        for rule in self._set.matching(envelope):
            if rule.merchant_id == DEFAULT:
                if (account, rule.name) in self._own:
                    continue  # this merchant overrides the default
            elif rule.merchant_id != account:
                continue
            out.extend(RuleTarget(rule, target) for target in rule.targets)
        return out


class RulesWatcher:
    """With many processes, a rule changed through one API process must reach the others'
    routers: each re-reads the stored rules every `interval` seconds (a handful of rows)."""

    def __init__(self, router: Router, store: RuleSource, interval: float = 2.0) -> None:
        self.router = router
        self.store = store
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if self.router.sync(await self.store.rules()):
                    log.info("rules changed elsewhere; reloaded")
            except Exception:
                log.exception("reloading rules failed; keeping the current ones")
