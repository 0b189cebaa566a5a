"""Properties of the ingress over the three LNS formats: what is valid is carried byte for byte, and any one field
made invalid is refused with a 4xx that names it."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import string
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_container.ingress.pipeline import IngressResult, UplinkIngress
from bridge_container.metrics import UplinkMetrics, new_registry
from tests.unit.bridge.test_ingress import (
    AS_KEY,
    CHIRPSTACK_TOKEN,
    NOW,
    TTS_TOKEN,
    Recorder,
    Sink,
    configuration,
)

CONFIG = configuration(
    lns=[
        {"kind": "thingpark", "asKey": AS_KEY, "maxTimeDriftSecs": 60},
        {"kind": "chirpstack", "ingressToken": CHIRPSTACK_TOKEN, "apiUrl": "https://cs.example.com/api"},
        {"kind": "tts", "ingressToken": TTS_TOKEN, "apiUrl": "https://eu1.example.com", "applicationId": "app"},
    ]
)
TOKEN_FIELDS = ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def answer(coroutine: Coroutine[Any, Any, IngressResult]) -> IngressResult:
    """The result of ``handle`` for an uplink, which completes without waiting (no event loop needed)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the ingress waited while handling an uplink")


def ingest(lns: str, document: dict[str, Any]) -> tuple[IngressResult, Sink]:
    """One uplink through a fresh ingress (so that no signed example is a replay of an earlier one)."""
    sink, recorder = Sink(), Recorder()
    ingress = UplinkIngress(
        "default", CONFIG, sink, UplinkMetrics(new_registry()), recorder, recorder.report, now=lambda: NOW
    )
    body = orjson.dumps(document)
    if lns == "thingpark":
        return answer(ingress.handle(lns, body, query=sign(document["DevEUI_uplink"]))), sink
    secret = CHIRPSTACK_TOKEN if lns == "chirpstack" else TTS_TOKEN
    return answer(ingress.handle(lns, body, query=b"event=up", authorization=secret.encode())), sink


def sign(uplink: dict[str, Any], time_text: str = "2026-05-01T14:00:00.000+02:00") -> bytes:
    """ThingPark's query for ``uplink``: signed unencoded, sent percent-encoded."""
    unencoded = f"LrnFPort=2&AS_ID=app.example&Time={time_text}"
    values = "".join("" if uplink.get(name) is None else str(uplink.get(name)) for name in TOKEN_FIELDS)
    token = hashlib.sha256((values + unencoded + AS_KEY).encode()).hexdigest()
    return f"LrnFPort=2&AS_ID=app.example&Time={quote(time_text)}&Token={token}".encode()


# --- valid uplinks -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Uplink:
    dev_eui: str
    fport: int
    fcnt: int
    payload: bytes
    dev_addr: str
    time: dt.datetime
    upper_hex: bool


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdefABCDEF", min_size=size, max_size=size)


uplinks = st.builds(
    Uplink,
    dev_eui=_hex(16),
    fport=st.integers(1, 223),
    fcnt=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=242),  # the largest LoRaWAN application payload
    dev_addr=_hex(8),
    # Within the 60 s drift of NOW, written in any zone ThingPark may use.
    time=st.builds(
        lambda secs, offset_mins: (NOW + dt.timedelta(seconds=secs)).astimezone(
            dt.timezone(dt.timedelta(minutes=offset_mins))
        ),
        st.integers(-59, 59),
        st.integers(-12 * 60, 14 * 60),
    ),
    upper_hex=st.booleans(),
)


def thingpark_document(uplink: Uplink) -> dict[str, Any]:
    payload_hex = uplink.payload.hex().upper() if uplink.upper_hex else uplink.payload.hex()
    return {
        "DevEUI_uplink": {
            "Time": uplink.time.isoformat(timespec="milliseconds"),
            "DevEUI": uplink.dev_eui,
            "FPort": uplink.fport,
            "FCntUp": uplink.fcnt,
            "DevAddr": uplink.dev_addr,
            "payload_hex": payload_hex,
            "CustomerID": "100000507",
            "LrrRSSI": -80.0,
        }
    }


def chirpstack_document(uplink: Uplink) -> dict[str, Any]:
    return {
        "time": uplink.time.isoformat(),
        "deviceInfo": {"devEui": uplink.dev_eui.lower(), "applicationId": "c1d5"},
        "devAddr": uplink.dev_addr.lower(),
        "fCnt": uplink.fcnt,
        "fPort": uplink.fport,
        "data": base64.b64encode(uplink.payload).decode(),
        "rxInfo": [{"rssi": -57, "snr": 9.2}],
    }


def tts_document(uplink: Uplink) -> dict[str, Any]:
    return {
        "end_device_ids": {
            "device_id": "dev1",
            "application_ids": {"application_id": "app"},
            "dev_eui": uplink.dev_eui,
            "dev_addr": uplink.dev_addr,
        },
        "received_at": uplink.time.isoformat(),
        "uplink_message": {
            "f_port": uplink.fport,
            "f_cnt": uplink.fcnt,
            "frm_payload": base64.b64encode(uplink.payload).decode(),
            "received_at": uplink.time.isoformat().replace("+00:00", "Z"),
        },
    }


FORMATS: dict[str, Callable[[Uplink], dict[str, Any]]] = {
    "thingpark": thingpark_document,
    "chirpstack": chirpstack_document,
    "tts": tts_document,
}


@PROPERTY_SETTINGS
@given(lns=st.sampled_from(sorted(FORMATS)), uplink=uplinks)
def test_a_valid_uplink_is_accepted_and_carries_the_same_payload_bytes(lns: str, uplink: Uplink) -> None:
    result, sink = ingest(lns, FORMATS[lns](uplink))
    assert result.status == 202, result.body
    [(topic, published)] = sink.items
    inner = orjson.loads(published)["DevEUI_uplink"]
    assert topic == f"tpx/things/{uplink.dev_eui.upper()}/uplink"
    assert bytes.fromhex(inner["payload_hex"]) == uplink.payload
    assert (inner["FPort"], inner["FCntUp"]) == (uplink.fport, uplink.fcnt)


# --- one field made invalid ----------------------------------------------------------------------------------------
non_hex_char = st.characters(codec="utf-8").filter(lambda char: char not in string.hexdigits)
# Integers within 64 bits, as orjson reads them (larger ones arrive as floats, refused all the same).
int64 = st.integers(-(2**63), 2**63 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
not_a_string = st.one_of(int64, finite_floats, st.booleans(), st.lists(int64, max_size=2))


def _with_foreign_char(size: int) -> st.SearchStrategy[str]:
    """``size`` characters of which at least one is not a hex digit."""
    return st.tuples(_hex(size - 1), non_hex_char, st.integers(0, size - 1)).map(
        lambda parts: parts[0][: parts[2]] + parts[1] + parts[0][parts[2] :]
    )


bad_dev_eui = st.one_of(
    _with_foreign_char(16), _hex(15), _hex(17), st.sampled_from(["", "70B3D57ED000/+/#"]), not_a_string, st.none()
)
bad_dev_addr = st.one_of(_with_foreign_char(8), _hex(7), _hex(9), not_a_string)
bad_fport = st.one_of(
    st.just(0),
    st.integers(224, 255),
    st.integers(-(2**63), -1),
    st.integers(256, 2**63 - 1),
    st.booleans(),
    finite_floats,
    st.sampled_from(["", "abc", "²", "1e3", "-1", "0", "224"]),
)
bad_counter = st.one_of(
    st.integers(-(2**63), -1),
    st.integers(2**32, 2**63 - 1),
    st.booleans(),
    finite_floats,
    st.sampled_from(["", "-1", "²", "٣", "4294967296", "9" * 5000, "1.5"]),
    st.lists(int64, max_size=1),
)
bad_hex = st.one_of(
    _with_foreign_char(4),
    _hex(1),
    _hex(3),
    st.sampled_from(["0 1", "0x01", "012"]),
    not_a_string.filter(lambda value: value is not None),
)


def _not_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except ValueError:
        return True
    return False


bad_base64 = st.one_of(
    st.text(max_size=12).filter(_not_base64), st.sampled_from(["AQI", "AQ=D", "****", "AQID\n"]), not_a_string
)
bad_time = st.one_of(
    st.sampled_from(["2026-05-01T12:00:00", "yesterday", "2026-13-01T00:00:00Z", "", "2026-05-01T25:00:00+00:00"]),
    st.datetimes().map(lambda moment: moment.isoformat()),  # naive: no zone
    not_a_string,
)
# For each format: the path of each checked field, how the error names it, and values it must refuse.
MUTATIONS: dict[str, list[tuple[tuple[str, ...], str, st.SearchStrategy[Any]]]] = {
    "thingpark": [
        (("DevEUI_uplink", "DevEUI"), "DevEUI_uplink.DevEUI", bad_dev_eui),
        (("DevEUI_uplink", "FPort"), "DevEUI_uplink.FPort", bad_fport),
        (("DevEUI_uplink", "FCntUp"), "DevEUI_uplink.FCntUp", bad_counter),
        (("DevEUI_uplink", "payload_hex"), "DevEUI_uplink.payload_hex", bad_hex),
        (("DevEUI_uplink", "DevAddr"), "DevEUI_uplink.DevAddr", bad_dev_addr),
        (("DevEUI_uplink", "Time"), "DevEUI_uplink.Time", bad_time),
    ],
    "chirpstack": [
        (("deviceInfo", "devEui"), "deviceInfo.devEui", bad_dev_eui),
        (("fPort",), "fPort", bad_fport),
        (("fCnt",), "fCnt", bad_counter),
        (("data",), "data", bad_base64),
        (("devAddr",), "devAddr", bad_dev_addr),
        (("time",), "time", bad_time),
    ],
    "tts": [
        (("end_device_ids", "dev_eui"), "end_device_ids.dev_eui", bad_dev_eui),
        (("uplink_message", "f_port"), "uplink_message.f_port", bad_fport),
        (("uplink_message", "f_cnt"), "uplink_message.f_cnt", bad_counter),
        (("uplink_message", "frm_payload"), "uplink_message.frm_payload", bad_base64),
        (("end_device_ids", "dev_addr"), "end_device_ids.dev_addr", bad_dev_addr),
        (("uplink_message", "received_at"), "uplink_message.received_at", bad_time),
    ],
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    lns = draw(st.sampled_from(sorted(MUTATIONS)))
    document = FORMATS[lns](draw(uplinks))
    path, field, values = draw(st.sampled_from(MUTATIONS[lns]))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(values)
    return lns, document, field


@PROPERTY_SETTINGS
@given(case=mutated())
def test_any_checked_field_made_invalid_is_refused_naming_it(case: tuple[str, dict[str, Any], str]) -> None:
    lns, document, field = case
    result, sink = ingest(lns, document)  # a ThingPark uplink is signed after the change: the field is to blame
    refusal = orjson.loads(result.body)
    assert 400 <= result.status < 500, refusal
    assert refusal["field"] == field
    assert sink.items == []
