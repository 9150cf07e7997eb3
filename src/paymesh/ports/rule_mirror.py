"""Where else a merchant's rule must live besides the store.

Embedded and scaled out, nowhere: the router reads the rules from the store. On AWS the
rules run in EventBridge, so each rule a merchant puts or deletes through the API is put on
(or taken off) the bus as well, after the store has it.
"""

from __future__ import annotations

from typing import Protocol

from paymesh.ports.bus import Rule


class RuleMirror(Protocol):
    async def put(self, rule: Rule) -> None: ...

    async def delete(self, merchant_id: str, name: str) -> None: ...


class NoMirror:
    async def put(self, rule: Rule) -> None:
        return None

    async def delete(self, merchant_id: str, name: str) -> None:
        return None
