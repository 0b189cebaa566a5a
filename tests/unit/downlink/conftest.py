"""Fixtures for the downlink unit tests: a registry with one connection's metrics and a recording publisher."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from bridge_container.downlink.metrics import DownlinkMetrics

CONNECTION_ID = "c1"


@dataclass
class Published:
    """Records what a pool's publish_control was asked to publish; can be told to fail."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    failing: bool = False

    async def publish(self, topic: str, payload: bytes) -> None:
        if self.failing:
            raise ConnectionError("no client is open")
        self.messages.append((topic, payload))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> DownlinkMetrics:
    return DownlinkMetrics.create(registry, CONNECTION_ID)


@pytest.fixture
def published() -> Published:
    return Published()
