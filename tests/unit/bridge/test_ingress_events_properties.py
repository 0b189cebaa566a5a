"""Properties of the event ingress: any JSON value in any field of a real event sample is published with the
document it came in, handed over as a downlink report, or refused with a 4xx; never an exception or a 5xx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_container.ingress.events import DownlinkReport
from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from tests.unit.bridge.test_ingress import CHIRPSTACK_TOKEN, NOW, TTS_TOKEN, Recorder, Sink, configuration

SAMPLES = Path(__file__).parents[2] / "events" / "lns"
CHIRPSTACK = {
    "join": "chirpstack_join",
    "status": "chirpstack_status",
    "location": "chirpstack_location",
    "log": "chirpstack_log",
    "txack": "chirpstack_txack",
    "ack": "chirpstack_ack",
}
TTS = ["tts_join_accept", "tts_location_solved", "tts_service_data", "tts_uplink_normalized", "tts_downlink_failed"]
TTS += [f"tts_downlink_{kind}" for kind in ("queued", "sent", "ack", "nack")]
CONFIG = configuration(events={"log": True, "service": True, "normalized": True})
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON document (objects only)."""
    found = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    return found


def replaced(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def handle(lns: str, event: str | None, document: dict[str, Any]) -> tuple[int, Sink, list[DownlinkReport]]:
    sink, recorder, reports = Sink(), Recorder(), []

    async def lifecycle(report: DownlinkReport) -> bool:
        reports.append(report)
        return True

    ingress = UplinkIngress(
        "default", CONFIG, sink, UplinkMetrics(new_registry()), recorder, None, lifecycle=lifecycle, now=lambda: NOW
    )
    body = orjson.dumps(document)
    if lns == "chirpstack":
        coroutine = ingress.handle(lns, body, query=f"event={event}".encode(), authorization=CHIRPSTACK_TOKEN.encode())
    else:
        coroutine = ingress.handle(lns, body, authorization=TTS_TOKEN.encode())
    result = asyncio.run(coroutine)
    return result.status, sink, reports


@st.composite
def spoiled_events(draw: st.DrawFn) -> tuple[str, str | None, dict[str, Any]]:
    lns = draw(st.sampled_from(["chirpstack", "tts"]))
    event: str | None = None
    if lns == "chirpstack":
        chirpstack_event = draw(st.sampled_from(sorted(CHIRPSTACK)))
        event, name = chirpstack_event, CHIRPSTACK[chirpstack_event]
    else:
        name = draw(st.sampled_from(TTS))
    document = json.loads((SAMPLES / f"{name}.json").read_text())
    path = draw(st.sampled_from(paths(document)))
    return lns, event, replaced(document, path, draw(JSON_VALUES))


@PROPERTY_SETTINGS
@given(spoiled_events())
def test_any_value_in_any_field_is_carried_or_refused_with_a_4xx(case: tuple[str, str | None, dict[str, Any]]) -> None:
    lns, event, document = case
    status, sink, reports = handle(lns, event, document)
    assert status in {202, 400, 413}
    if status == 202:
        carried = [orjson.loads(payload)["source"] for _, payload in sink.items] + [r.report for r in reports]
        assert carried in ([document], [])  # published or handed over as it came; or acknowledged (not carried)
    else:
        assert (sink.items, reports) == ([], [])
