"""The EventBridge event-pattern language: validate, compile, match, and route.

    compile_pattern(pattern) -> CompiledPattern      raises InvalidEventPattern
    CompiledPattern.matches(event) -> bool
    test_event_pattern(pattern, event) -> bool       EventBridge's TestEventPattern
    RuleSet[T]: many named rules in one index; matching(event) -> values of the
    rules that match, in insertion order

Standard library only: this is part of the core.
"""

from __future__ import annotations

from .errors import InvalidEventPattern
from .pattern import CompiledPattern, compile_pattern, test_event_pattern
from .ruleset import RuleSet

__all__ = [
    "CompiledPattern",
    "InvalidEventPattern",
    "RuleSet",
    "compile_pattern",
    "test_event_pattern",
]
