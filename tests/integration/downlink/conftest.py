"""Fixtures for the downlink integration tests: a local HTTP server playing the network servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge_container.downlink.local_lns import LocalLns, RecordedRequest

WINDOW_SLACK_SECS = 0.02  # loopback delivery jitter between the limiter's grant and the server's clock


@pytest.fixture
def lns() -> Iterator[LocalLns]:
    with LocalLns() as server:
        yield server


def max_in_window(requests: list[RecordedRequest], window_secs: float) -> int:
    """Most requests that arrived inside any half-open window of ``window_secs``."""
    times = sorted(request.arrived_at for request in requests)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window_secs:
            start += 1
        best = max(best, end - start + 1)
    return best
