"""One Lambda execution environment: its event loop and paymesh's core, built at the first
invocation and kept for the next ones (the cold start pays for it once).

Lambda freezes the environment when the handler returns, so every invocation finishes the
tasks it started (a webhook's follow-up drive, say) before returning: work left on the loop
would run, if ever, during some later invocation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from paymesh.config import Settings

T = TypeVar("T")


def settings_from_env() -> Settings:
    # /tmp is a Lambda function's only writable directory.
    if "PAYMESH_DATA_DIR" not in os.environ:
        os.environ["PAYMESH_DATA_DIR"] = "/tmp/paymesh"  # noqa: S108
    return Settings.from_env()


class Environment:
    """What one function keeps between invocations. Built lazily: importing the handlers
    module costs only the imports (measured as the cold start, see benchmarks)."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.loop: asyncio.AbstractEventLoop | None = None
        self.state: dict[str, Any] = {}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on this environment's loop, then everything it left running."""
        return self.call(lambda loop: loop.run_until_complete(work))

    def call(self, invoke: Callable[[asyncio.AbstractEventLoop], T]) -> T:
        """Call `invoke` with this environment's loop as the thread's current one (Mangum
        runs the app on the current loop itself), then finish what it left running."""
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            result = invoke(self.loop)
            self.finish()
            return result
        finally:
            asyncio.set_event_loop(None)

    def finish(self) -> None:
        assert self.loop is not None
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        if pending:
            self.loop.run_until_complete(asyncio.wait(pending, timeout=30))

    def close(self) -> None:
        """End the environment (tests: one per deployment)."""
        closers = self.state.pop("closers", [])
        if self.loop is not None:
            for close in reversed(closers):
                self.run(close())
            self.loop.close()
            self.loop = None
        self.state.clear()
