"""Run an ASGI app on a real loopback port for a test.

Tests talk real HTTP to real servers: the connector to the sandbox, the stripe package to the
sandbox, a client to the API. The same helper runs the demo's server.
"""

from paymesh.entrypoints.server_thread import free_port
from paymesh.entrypoints.server_thread import serving as live_server

__all__ = ["free_port", "live_server"]
