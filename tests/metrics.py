"""Reading the bridge's Prometheus registry in tests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (every other label summed over)."""
    wanted = set((labels or {}).items())
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )
