"""In memory: the store tests run the service and the event bus on (no file, no server)."""

from paymesh.adapters.memory.store import MemoryStore

__all__ = ["MemoryStore"]
