"""The one error of the rules package.

    ValueError
    └── InvalidEventPattern     the pattern breaks the EventBridge pattern grammar

Matching never raises it: once a pattern compiled, any JSON event can be tested.
"""

from __future__ import annotations


class InvalidEventPattern(ValueError):
    """A pattern EventBridge would refuse; the message names the field and the problem.

    ``path`` is the dotted field path the problem was found at ("" for the pattern
    as a whole), so an API can point the caller at it.
    """

    code = "invalid_event_pattern"

    def __init__(self, problem: str, path: str = "") -> None:
        where = f"field {path!r}: " if path else ""
        super().__init__(f"invalid event pattern: {where}{problem}")
        self.problem = problem
        self.path = path
