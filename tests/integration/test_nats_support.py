"""The tests' nats-server: the url a started server gives reaches that very process, even when
several are started at once (as xdist's workers do), so no worker's tests run on another's
server and lose it when that worker stops it."""

from __future__ import annotations

import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats

from tests.support.nats import NatsServer, start_nats, stop_nats


def _logged_id(server: NatsServer) -> str:
    found = re.search(r"\]\s+ID:\s+(\w+)", server.log_file.read_text())
    assert found, server.log_tail()
    return found.group(1)


async def test_servers_started_at_once_each_answer_at_their_own_url() -> None:
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        with ThreadPoolExecutor(2) as pool:
            servers = list(pool.map(start_nats, [Path(a), Path(b)]))
        try:
            assert servers[0].port != servers[1].port
            for server in servers:
                assert server.process.poll() is None, server.log_tail()
                nc = await nats.connect(server.url)
                try:
                    # nats-py keeps the server's INFO only in a private attribute
                    assert nc._server_info["server_id"] == _logged_id(server)
                finally:
                    await nc.close()
        finally:
            for server in servers:
                stop_nats(server)
