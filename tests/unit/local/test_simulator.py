"""The simulated LNSs: the fleet follows the mix, each LNS's wire format is realistic, ThingPark uplinks are signed."""

from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from bridge_domain.deveui import is_dev_eui
from devtools.simulator import LnsEndpoint, build_fleet, prepare_uplink

AS_KEY = "00112233445566778899aabbccddeeff"


def test_fleet_follows_the_mix_and_has_unique_valid_deveuis() -> None:
    fleet = build_fleet(20, {"thingpark": 50, "chirpstack": 30, "tts": 20})
    assert Counter(device.lns for device in fleet) == {"thingpark": 10, "chirpstack": 6, "tts": 4}
    assert len({device.dev_eui for device in fleet}) == 20
    assert all(is_dev_eui(device.dev_eui) for device in fleet)


def test_a_zero_weight_gets_no_device() -> None:
    fleet = build_fleet(7, {"thingpark": 0, "chirpstack": 1, "tts": 0})
    assert {device.lns for device in fleet} == {"chirpstack"}


def test_thingpark_uplink_carries_a_token_that_verifies_independently() -> None:
    (device,) = build_fleet(1, {"thingpark": 1})
    before = device.f_cnt
    uplink = prepare_uplink(device, LnsEndpoint("thingpark", "/uplinks/thingpark", AS_KEY), random.Random(1))
    document = orjson.loads(uplink.body)["DevEUI_uplink"]
    query = urlsplit(uplink.target).query
    assert "%2B00%3A00" in query  # the Time's '+' must not turn into a space on the way
    parameters = parse_qsl(query)
    names = [name for name, _ in parameters]
    assert names == ["LrnDevEui", "LrnFPort", "LrnInfos", "AS_ID", "Time", "Token"]
    signed = "&".join(f"{name}={value}" for name, value in parameters[:-1])
    expected = hashlib.sha256(
        (
            document["CustomerID"]
            + document["DevEUI"]
            + str(document["FPort"])
            + str(document["FCntUp"])
            + document["payload_hex"]
            + signed
            + AS_KEY
        ).encode()
    ).hexdigest()
    assert parameters[-1] == ("Token", expected)
    assert document["FCntUp"] == before + 1
    assert document["DevEUI"] == dict(parameters)["LrnDevEui"] == device.dev_eui
    assert len(bytes.fromhex(document["payload_hex"])) == 5
    assert {"LrrRSSI", "LrrSNR", "Lrrs", "FPort", "FCntUp", "Time", "DevAddr"} <= set(document)
    assert len(document["Lrrs"]["Lrr"]) == document["DevLrrCnt"] >= 1


def test_chirpstack_up_event_has_the_v4_shape() -> None:
    (device,) = build_fleet(1, {"chirpstack": 1})
    uplink = prepare_uplink(device, LnsEndpoint("chirpstack", "/c", "tok"), random.Random(1))
    event = orjson.loads(uplink.body)
    assert uplink.target == "/c?event=up"
    assert uplink.headers["Authorization"] == "Bearer tok"
    assert event["deviceInfo"]["devEui"] == device.dev_eui.lower()
    assert event["fPort"] == 2
    assert event["fCnt"] == device.f_cnt
    assert len(base64.b64decode(event["data"])) == 5
    assert {"gatewayId", "rssi", "snr"} <= set(event["rxInfo"][0])


def test_tts_uplink_message_has_the_v3_shape() -> None:
    (device,) = build_fleet(1, {"tts": 1})
    endpoint = LnsEndpoint("tts", "/t", "tok", application_id="app-1")
    message = orjson.loads(prepare_uplink(device, endpoint, random.Random(1)).body)
    ids, uplink = message["end_device_ids"], message["uplink_message"]
    assert ids["dev_eui"] == device.dev_eui
    assert ids["application_ids"]["application_id"] == "app-1"
    assert uplink["f_port"] == 2
    assert uplink["f_cnt"] == device.f_cnt
    assert len(base64.b64decode(uplink["frm_payload"])) == 5
    assert {"gateway_ids", "rssi", "snr"} <= set(uplink["rx_metadata"][0])


@pytest.mark.parametrize("kind", ["thingpark", "chirpstack", "tts"])
def test_temperature_in_the_frame_matches_the_decoded_value(kind: str) -> None:
    (device,) = build_fleet(1, {kind: 1})  # type: ignore[dict-item]
    frame, decoded = device.next_reading(random.Random(3))
    assert int.from_bytes(frame[:2], "big", signed=True) / 100 == pytest.approx(decoded["temperature"], abs=0.01)
    assert frame[2] == decoded["humidity"]
