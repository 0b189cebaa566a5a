"""ThingPark authentication at the ingress: uplinks and downlink reports signed with the AS key, each accepted once."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from pydantic import ValidationError

from bridge_container.ingress.exceptions import ReplayCacheFullError, ReplayedError
from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.ingress.replay import ReplayCache
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.registration import NullRegistrar
from bridge_domain.exceptions import ConfigError
from bridge_domain.lns import ThingParkLns
from bridge_domain.loading import parse_connection
from bridge_domain.secrets import reveal
from tests.metrics import sample_value
from tests.unit.bridge.test_ingress import AS_KEY, DEV_EUI, NOW, Recorder, Sink, body_of, build, configuration

UPLINK_FIELDS = ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")
REPORT_FIELDS = ("CustomerID", "DevEUI", "FPort", "FCntDn")
UPLINK = {"CustomerID": "100000507", "DevEUI": DEV_EUI, "FPort": 2, "FCntUp": 7, "payload_hex": "0102"}
SENT = {"CustomerID": "100000507", "DevEUI": DEV_EUI, "FPort": 2, "FCntDn": 4, "CorrelationID": "c1"}


def signed(message: dict[str, Any], names: tuple[str, ...], time_text: str = "2026-05-01T12:00:10.000+00:00") -> bytes:
    """ThingPark's query with its Token: SHA-256 over the message's signed values, the query and the AS key."""
    query = f"LrnDevEui={DEV_EUI}&LrnFPort=2&LrnInfos=UPHTTP_LAB_LORA&AS_ID=app.example&Time={quote(time_text)}"
    values = "".join(str(message.get(name, "")) for name in names)
    return f"{query}&Token={hashlib.sha256(f'{values}{query}{AS_KEY}'.encode()).hexdigest()}".encode()


def secured(**thingpark: Any) -> tuple[Any, Sink, Recorder, Any]:
    return build(configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY, **thingpark}]))


async def test_a_signed_uplink_is_accepted_once() -> None:
    ingress, sink, _, registry = secured()
    body, query = orjson.dumps({"DevEUI_uplink": UPLINK}), signed(UPLINK, UPLINK_FIELDS)
    first = await ingress.handle("thingpark", body, query=query)
    again = await ingress.handle("thingpark", body, query=query)
    upper_token = await ingress.handle("thingpark", body, query=query[:-64] + query[-64:].upper())
    assert first.status == 202
    assert (again.status, body_of(again)["error"], body_of(again)["field"]) == (403, "replayed", "Token")
    assert upper_token.status == 403  # the Token's case does not make it a new one
    assert len(sink.items) == 1
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "replayed"}) == 2
    assert sample_value(registry, "bridge_ingress_unauthorized_total") == 0  # a replay is 403, not a credential


async def test_a_signed_uplink_refused_for_a_full_buffer_may_come_back() -> None:
    ingress, sink, _, _ = secured()
    sink.capacity = 0
    body, query = orjson.dumps({"DevEUI_uplink": UPLINK}), signed(UPLINK, UPLINK_FIELDS)
    assert (await ingress.handle("thingpark", body, query=query)).status == 429
    sink.capacity = 1
    assert (await ingress.handle("thingpark", body, query=query)).status == 202


@pytest.mark.parametrize("root", ["DevEUI_downlink_Sent", "DevEUI_downlink_Rejected"])
async def test_a_report_without_a_token_or_with_a_wrong_one_is_refused_and_not_reported(root: str) -> None:
    ingress, sink, recorder, registry = secured()
    body = orjson.dumps({root: SENT})
    missing = await ingress.handle("thingpark", body, query=b"LrnDevEui=" + DEV_EUI.encode())
    forged = await ingress.handle("thingpark", body, query=b"Time=2026-05-01T12:00:00Z&Token=" + b"ab" * 32)
    other_fields = await ingress.handle(
        "thingpark", orjson.dumps({root: {**SENT, "FCntDn": 5}}), query=signed(SENT, REPORT_FIELDS)
    )
    assert (missing.status, body_of(missing)["error"]) == (401, "token_missing")
    assert (forged.status, body_of(forged)["error"]) == (401, "token_mismatch")
    assert (other_fields.status, body_of(other_fields)["error"]) == (401, "token_mismatch")
    assert recorder.reports == []
    assert sink.items == []
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "token_mismatch"}) == 2
    assert sample_value(registry, "bridge_ingress_unauthorized_total", {"lns": "thingpark"}) == 3


async def test_a_signed_report_reaches_the_downlink_part_once() -> None:
    ingress, _, recorder, _ = secured()
    body, query = orjson.dumps({"DevEUI_downlink_Sent": SENT}), signed(SENT, REPORT_FIELDS)
    first = await ingress.handle("thingpark", body, query=query)
    again = await ingress.handle("thingpark", body, query=query)
    assert (first.status, again.status) == (202, 403)
    assert recorder.reports == [("DevEUI_downlink_Sent", {"DevEUI_downlink_Sent": SENT})]


async def test_a_signed_report_with_an_invalid_dev_eui_is_refused_naming_it() -> None:
    ingress, _, recorder, _ = secured()
    report = {**SENT, "DevEUI": "70B3D57ED000/+/#"}
    result = await ingress.handle(
        "thingpark", orjson.dumps({"DevEUI_downlink_Sent": report}), query=signed(report, REPORT_FIELDS)
    )
    assert (result.status, body_of(result)["field"]) == (400, "DevEUI_downlink_Sent.DevEUI")
    assert recorder.reports == []


@pytest.mark.parametrize(
    ("time_text", "status", "error"),
    [
        ("2026-05-01T14:00:30.000+02:00", 202, None),  # 12:00:30 UTC, within 60 s
        ("2026-05-01T07:00:30-05:00", 202, None),
        ("2026-05-01T12:00:30Z", 202, None),
        ("2026-05-01T12:00:30.000+01:00", 401, "time_drift"),  # 11:00:30 UTC
        ("2026-05-01T12:00:30", 401, "time_invalid"),  # no zone: cannot be placed on the bridge's clock
        ("yesterday", 401, "time_invalid"),
    ],
)
async def test_time_is_compared_with_its_zone(time_text: str, status: int, error: str | None) -> None:
    ingress, _, _, _ = secured()
    query = signed(UPLINK, UPLINK_FIELDS, time_text)
    result = await ingress.handle("thingpark", orjson.dumps({"DevEUI_uplink": UPLINK}), query=query)
    assert (result.status, body_of(result).get("error")) == (status, error)


async def test_a_query_without_time_is_refused() -> None:
    ingress, _, _, _ = secured()
    query = "AS_ID=app.example"
    token = hashlib.sha256(("".join(str(UPLINK[n]) for n in UPLINK_FIELDS) + query + AS_KEY).encode()).hexdigest()
    result = await ingress.handle(
        "thingpark", orjson.dumps({"DevEUI_uplink": UPLINK}), query=f"{query}&Token={token}".encode()
    )
    assert (result.status, body_of(result)["error"]) == (401, "time_missing")


async def test_refusals_never_echo_the_as_key_or_the_token() -> None:
    ingress, _, _, _ = secured()
    query = signed(UPLINK, UPLINK_FIELDS)
    tampered = orjson.dumps({"DevEUI_uplink": {**UPLINK, "FCntUp": 8}})
    answer = (await ingress.handle("thingpark", tampered, query=query)).body
    assert AS_KEY.encode() not in answer
    assert query[-64:] not in answer


def test_the_as_key_is_32_hex_digits_normalised_to_lower_case() -> None:
    assert reveal(ThingParkLns.model_validate({"asKey": AS_KEY.upper()}).as_key) == AS_KEY
    for wrong in ("0123", AS_KEY + "0", "g" * 32, f" {AS_KEY}", "secret-passphrase-0123456789abcdef"):
        with pytest.raises(ValidationError) as caught:
            ThingParkLns.model_validate({"asKey": wrong})
        assert wrong not in str(caught.value)


def test_a_malformed_as_key_is_a_configuration_error_naming_the_field() -> None:
    document = {
        "connectorId": "actility-aws-iot",
        "name": "c",
        "configuration": {
            "deviceType": "sensor",
            "region": "eu-central-1",
            "protocol": "WSS",
            "accountPrefix": "a1b2c3d4e5f6-ats",
            "lns": [{"kind": "thingpark", "asKey": "not-a-128-bit-key"}],
        },
    }
    with pytest.raises(ConfigError) as caught:
        parse_connection(document, source="test")
    assert "configuration.lns[0].thingpark.asKey" in str(caught.value)
    assert "not-a-128-bit-key" not in str(caught.value)


async def test_an_upper_case_as_key_accepts_what_thingpark_signed() -> None:
    ingress, _, _, _ = build(configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY.upper()}]))
    query = signed(UPLINK, UPLINK_FIELDS)
    assert (await ingress.handle("thingpark", orjson.dumps({"DevEUI_uplink": UPLINK}), query=query)).status == 202


# --- the replay cache itself -----------------------------------------------------------------------------------
def test_the_replay_cache_forgets_a_token_once_its_time_is_out_of_the_drift() -> None:
    cache = ReplayCache(max_entries=10)
    cache.remember("a", expires_at=100.0, now=0.0)
    with pytest.raises(ReplayedError):
        cache.check("a", now=99.0)
    cache.check("a", now=100.0)
    cache.remember("b", expires_at=200.0, now=150.0)
    assert len(cache) == 1


def test_a_full_replay_cache_refuses_with_the_time_until_room_instead_of_evicting() -> None:
    cache = ReplayCache(max_entries=2)
    cache.remember("a", expires_at=130.0, now=100.0)
    cache.remember("b", expires_at=160.0, now=100.0)
    with pytest.raises(ReplayCacheFullError) as caught:
        cache.check("c", now=110.0)
    assert caught.value.retry_after_secs == 20
    with pytest.raises(ReplayedError):
        cache.check("a", now=110.0)  # nothing was evicted
    cache.check("c", now=130.0)  # "a" has expired: room again


async def test_a_full_replay_cache_is_503_and_counted() -> None:
    registry, sink = new_registry(), Sink()
    config = configuration(lns=[{"kind": "thingpark", "asKey": AS_KEY}])
    ingress = UplinkIngress(
        "default", config, sink, UplinkMetrics(registry), NullRegistrar(), None, now=lambda: NOW, max_replay_entries=1
    )
    first = {**UPLINK, "FCntUp": 1}
    second = {**UPLINK, "FCntUp": 2}
    await ingress.handle("thingpark", orjson.dumps({"DevEUI_uplink": first}), query=signed(first, UPLINK_FIELDS))
    result = await ingress.handle(
        "thingpark", orjson.dumps({"DevEUI_uplink": second}), query=signed(second, UPLINK_FIELDS)
    )
    assert (result.status, result.retry_after_secs) == (503, 70)  # Time 12:00:10 + 60 s drift - now 12:00:00
    assert len(sink.items) == 1
    assert sample_value(registry, "bridge_uplinks_rejected_total", {"reason": "replay_cache_full"}) == 1
