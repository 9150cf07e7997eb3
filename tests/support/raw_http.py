"""HTTP/1.1 by hand, for what a well-behaved client cannot send: slow, huge or broken requests.

A client library would buffer, retry or refuse; a socket sends exactly the bytes a test
chose, when it chose, and shows exactly what the server answered and when it hung up.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msgspec


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool = False  # the server closed the connection after it
    raw: bytes = field(default=b"", repr=False)

    def json(self) -> object:
        return msgspec.json.decode(self.body)


def connect(base: str, timeout: float = 10) -> socket.socket:
    parts = urlsplit(base)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def request_head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_response(sock: socket.socket, timeout: float = 10) -> RawResponse | None:
    """One response (Content-Length framed), or None if the server closed without one."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = _recv(sock)
        if not chunk:
            break
        rest += chunk
    return RawResponse(int(status_line.split()[1]), headers, rest[:length], raw=data)


def closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    """True once the server closes the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while True:
            if not _recv(sock):
                return True
    except TimeoutError:
        return False


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def send_slowly(
    sock: socket.socket, data: bytes, every: float, until: float
) -> tuple[float, bytes]:
    """Send `data` a byte at a time, one every `every` seconds, until the server answers or
    hangs up, or `until` seconds pass. Returns how long the connection lasted from the first
    byte, and what the server sent (b"" for a bare close)."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            break
        if time.monotonic() - started > until:
            return time.monotonic() - started, b""
    lasted = time.monotonic() - started
    sock.settimeout(2)
    received = b""
    try:
        while chunk := _recv(sock):
            received += chunk
    except TimeoutError:  # answered but not closed
        pass
    return lasted, received
