"""The live summary reads the bridge's own Prometheus text: totals, drops by reason, pool and client states."""

from __future__ import annotations

from bridge_container.metrics import UplinkMetrics, new_registry, render
from devtools.summary import BridgeFigures, Snapshot, combine, final_report, parse_metrics, summary_line


def test_figures_come_from_the_bridges_metric_families() -> None:
    registry = new_registry()
    metrics = UplinkMetrics(registry)
    metrics.accepted.labels("c1", "thingpark").inc(7)
    metrics.accepted.labels("c1", "tts").inc(3)
    metrics.published.labels("c1").inc(9)
    metrics.dropped.labels("c1", "publish_failed").inc(1)
    metrics.registrations.labels("c1", "created").inc(4)
    metrics.pool_state.labels("c1").state("OPENED")
    metrics.client_state.labels("c1", "iot-bridge-local-0").state("OPENED")
    metrics.client_state.labels("c1", "iot-bridge-local-1").state("UNREACHABLE")
    figures = parse_metrics(render(registry).decode())
    assert figures.accepted == 10
    assert figures.published == 9
    assert figures.dropped == {"publish_failed": 1}
    assert figures.registrations == {"created": 4}
    assert figures.pool_states == {"c1": "OPENED"}
    assert figures.client_states == {"OPENED": 1, "UNREACHABLE": 1}


def snapshot(elapsed: float, count: int) -> Snapshot:
    bridge = BridgeFigures(accepted=count, published=count, pool_states={"c1": "OPENED"}, client_states={"OPENED": 2})
    return Snapshot(elapsed, count, count, {202: count}, bridge, count, 3, 3, 1, 1, {"sent": 1})


def test_summary_line_shows_rates_over_the_interval() -> None:
    line = summary_line(snapshot(4.0, 60), snapshot(2.0, 20))
    assert "LNS sent    20.0/s" in line
    assert "at broker    20.0/s" in line
    assert "pool OPENED (2 OPENED)" in line
    assert "60 received from mosquitto (3 devices)" in final_report(snapshot(4.0, 60))


def test_the_figures_of_several_tasks_add_up() -> None:
    first = BridgeFigures(
        accepted=3, published=2, dropped={"x": 1}, pool_states={"c": "OPENED"}, client_states={"OPENED": 2}
    )
    second = BridgeFigures(
        accepted=4, published=4, dropped={"x": 2, "y": 1}, pool_states={"c": "OPENING"}, client_states={"OPENED": 1}
    )
    total = combine([first, second])
    assert (total.accepted, total.published, total.dropped) == (7, 6, {"x": 3, "y": 1})
    assert total.pool_states == {"task1/c": "OPENED", "task2/c": "OPENING"}
    assert total.client_states == {"OPENED": 3}
    assert combine([first]) is first
