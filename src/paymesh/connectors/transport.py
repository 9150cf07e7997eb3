"""Transport failures, translated once for every connector into the two facts the service
needs: may a retry help (`retryable`), and may the PSP have acted (`outcome_unknown`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from paymesh.ports.connector import PspError


@contextmanager
def psp_transport_errors(psp: str, display_name: str,
                         outcome_unknown: bool = True) -> Iterator[None]:
    """`outcome_unknown=False` for calls that cannot move money (fetching a token)."""
    try:
        yield
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        # Nothing reached the PSP: safe to call this a plain failure.
        raise PspError(psp, f"cannot reach {display_name}: {type(exc).__name__}",
                       code="connection_error") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        # The request may have arrived and been acted on; only a sync can tell.
        raise PspError(psp, f"no answer from {display_name}: {type(exc).__name__}",
                       code="timeout", outcome_unknown=outcome_unknown) from exc
