"""Raw-socket checks: whether, and how soon, the server closes a connection."""

from __future__ import annotations

import select
import socket
import time


def closed_after(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed `sock` (reading what it sends), None if still open."""
    started = time.monotonic()
    while (left := within_s - (time.monotonic() - started)) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if readable:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
    return None


def is_open(sock: socket.socket) -> bool:
    return closed_after(sock, 0.05) is None
