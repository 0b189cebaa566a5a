"""Free loopback ports and waiting for a listener."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, host: str = LOOPBACK, timeout_secs: float = 10.0) -> None:
    """Return once ``host:port`` accepts TCP connections; raise TimeoutError after ``timeout_secs``."""
    deadline = time.monotonic() + timeout_secs
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_secs}s") from None
            time.sleep(0.05)
