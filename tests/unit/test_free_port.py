"""Test servers bind a port chosen beforehand: it must not be one the kernel may hand to a
client socket meanwhile (the flake: "address already in use" when a parallel test's
outgoing connection took the port between the pick and the bind)."""

from __future__ import annotations

import socket
from pathlib import Path

from paymesh.entrypoints.server_thread import free_port


def test_a_free_port_is_below_the_kernels_ephemeral_range_and_bindable() -> None:
    first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(10_000 <= port < first for port in ports), sorted(ports)
    assert len(ports) > 1  # drawn at random, not one fixed port for every caller
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))
