"""A simulated LoRaWAN network: devices on ThingPark, ChirpStack and TTS sending realistic uplinks at a set rate.

Each LNS speaks its own wire format, as the bridge receives it in production:

* ThingPark: ``{"DevEUI_uplink": {...}}`` with ``LrnDevEui``, ``LrnFPort``, ``LrnInfos``, ``AS_ID``, ``Time`` and a
  ``Token`` (SHA-256 over CustomerID, DevEUI, FPort, FCntUp, payload_hex, the query before ``&Token`` and the AS key);
* ChirpStack v4: the HTTP integration's ``up`` event (``?event=up``), bearer token in ``Authorization``;
* The Things Stack v3: the webhook's ``uplink_message``, with the webhook's ``Authorization`` header.

Devices report temperature, humidity and battery in a 5-byte frame; frame counters, RSSI/SNR and gateways vary
per device, the way a real fleet looks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote, urlencode

import orjson

from bridge_domain.lns import LnsKind
from devtools.http_load import TRANSPORT_FAILED, HttpLoad, post_request

LNS_KINDS: Final[tuple[LnsKind, ...]] = ("thingpark", "chirpstack", "tts")
DEFAULT_MIX: Final[Mapping[LnsKind, int]] = {"thingpark": 50, "chirpstack": 30, "tts": 20}
DEV_EUI_PREFIX: Final = "70B3D57ED0"  # an OUI-style prefix; the index fills the last 6 hex digits
SENSOR_FPORT: Final = 2
THINGPARK_CUSTOMER_ID: Final = "100000507"
TICK_SECS: Final = 0.01
REQUEST_TIMEOUT_SECS: Final = 5.0

_GATEWAYS: Final = (
    ("FF0109A4", "0016C001FF10A235", 48.8566, 2.3522),
    ("FF0109B7", "0016C001FF10B118", 48.8600, 2.3410),
    ("FF010A02", "B827EBFFFE6A1C02", 48.8490, 2.3650),
)


@dataclass(frozen=True, slots=True)
class LnsEndpoint:
    """Where and how one simulated LNS sends its uplinks to the bridge."""

    kind: LnsKind
    path: str  # the bridge's ingress path for this LNS, e.g. /connections/<id>/uplinks/thingpark
    secret: str | None = None  # ThingPark: AS key; ChirpStack / TTS: ingress token
    as_id: str = "aws-iot-bridge"
    application_id: str = "local-app"


@dataclass(slots=True)
class Device:
    """One simulated end device and its radio neighbourhood."""

    dev_eui: str
    lns: LnsKind
    dev_addr: str
    f_cnt: int
    spreading_factor: int
    base_rssi: float
    base_snr: float
    gateways: tuple[tuple[str, str, float, float], ...]
    temperature_c: float

    def next_reading(self, rng: random.Random) -> tuple[bytes, dict[str, float]]:
        """A 5-byte frame: int16 temperature x100, humidity %, uint16 battery mV (big-endian)."""
        self.temperature_c = max(-20.0, min(45.0, self.temperature_c + rng.uniform(-0.3, 0.3)))
        humidity = rng.randint(35, 70)
        battery_mv = rng.randint(3300, 3600)
        raw = round(self.temperature_c * 100).to_bytes(2, "big", signed=True)
        frame = raw + bytes([humidity]) + battery_mv.to_bytes(2, "big")
        decoded = {
            "temperature": round(self.temperature_c, 2),
            "humidity": float(humidity),
            "battery": battery_mv / 1000,
        }
        self.f_cnt += 1
        return frame, decoded


def build_fleet(count: int, mix: Mapping[LnsKind, int], seed: int = 7) -> list[Device]:
    """``count`` devices spread over the LNS kinds in proportion to ``mix`` (deterministic for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - simulation, not security
    weights = [(kind, weight) for kind, weight in mix.items() if weight > 0]
    if not weights:
        raise ValueError("the LNS mix needs at least one positive weight")
    total = sum(weight for _, weight in weights)
    devices: list[Device] = []
    assigned: Counter[LnsKind] = Counter()
    for index in range(count):
        # the kind furthest below its share takes the next device, so small fleets follow the mix too
        kind = min(weights, key=lambda item: (assigned[item[0]] + 1) / item[1] * total)[0]
        assigned[kind] += 1
        devices.append(
            Device(
                dev_eui=f"{DEV_EUI_PREFIX}{index + 1:06X}",
                lns=kind,
                dev_addr=f"{rng.getrandbits(32):08X}",
                f_cnt=rng.randint(0, 500),
                spreading_factor=rng.choice((7, 7, 8, 9, 10, 12)),
                base_rssi=rng.uniform(-115.0, -60.0),
                base_snr=rng.uniform(-5.0, 10.0),
                gateways=tuple(rng.sample(_GATEWAYS, rng.randint(1, len(_GATEWAYS)))),
                temperature_c=rng.uniform(15.0, 25.0),
            )
        )
    return devices


def _iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _iso_z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


UPLINK_SIGNED_FIELDS: Final = ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")
REPORT_SIGNED_FIELDS: Final = ("CustomerID", "DevEUI", "FPort", "FCntDn")


def thingpark_token(
    message: Mapping[str, Any],
    query_parameters: Sequence[tuple[str, str]],
    as_key: str,
    signed_fields: Sequence[str] = UPLINK_SIGNED_FIELDS,
) -> str:
    """ThingPark's Token: SHA-256 hex of the message's signed fields (an uplink's CustomerID DevEUI FPort FCntUp
    payload_hex, a report's CustomerID DevEUI FPort FCntDn), the query, the AS key."""
    body_part = "".join(str(message.get(name, "")) for name in signed_fields)
    query_part = "&".join(f"{name}={value}" for name, value in query_parameters)
    return hashlib.sha256((body_part + query_part + as_key).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PreparedUplink:
    """One HTTP request, ready to send."""

    target: str  # path and query
    body: bytes
    headers: dict[str, str]

    def request(self) -> bytes:
        return post_request(self.target, self.body, self.headers)


def thingpark_uplink(device: Device, frame: bytes, endpoint: LnsEndpoint, rng: random.Random) -> PreparedUplink:
    now = datetime.now(UTC)
    rssi = round(device.base_rssi + rng.uniform(-3, 3), 1)
    snr = round(device.base_snr + rng.uniform(-1.5, 1.5), 2)
    lrrs = [
        {
            "Lrrid": lrr_id,
            "Chain": 0,
            "LrrRSSI": round(rssi - 4 * position, 1),
            "LrrSNR": round(snr - position, 2),
            "LrrESP": round(rssi - 4 * position - 0.8, 1),
        }
        for position, (lrr_id, _, _, _) in enumerate(device.gateways)
    ]
    best_id, _, latitude, longitude = device.gateways[0]
    uplink = {
        "Time": _iso_millis(now),
        "DevEUI": device.dev_eui,
        "FPort": SENSOR_FPORT,
        "FCntUp": device.f_cnt,
        "ADRbit": 1,
        "MType": 2,
        "FCntDn": device.f_cnt // 10,
        "payload_hex": frame.hex(),
        "mic_hex": f"{rng.getrandbits(32):08x}",
        "Lrcid": "00000201",
        "LrrRSSI": rssi,
        "LrrSNR": snr,
        "LrrESP": round(rssi - 0.8, 1),
        "SpFact": device.spreading_factor,
        "SubBand": "G1",
        "Channel": "LC2",
        "DevLrrCnt": len(lrrs),
        "Lrrid": best_id,
        "Late": 0,
        "LrrLAT": latitude,
        "LrrLON": longitude,
        "Lrrs": {"Lrr": lrrs},
        "CustomerID": THINGPARK_CUSTOMER_ID,
        "CustomerData": {"alr": {"pro": "LORA/Generic", "ver": "1"}},
        "ModelCfg": "0",
        "DevAddr": device.dev_addr,
        "TxPower": 14.0,
        "NbTrans": 1,
        "Frequency": 868.3,
        "DynamicClass": "A",
        "InstantPER": 0.0,
        "MeanPER": 0.002,
    }
    parameters = [
        ("LrnDevEui", device.dev_eui),
        ("LrnFPort", str(SENSOR_FPORT)),
        ("LrnInfos", f"TWA_{THINGPARK_CUSTOMER_ID}.{rng.randint(1000, 9999)}.AS-1-{rng.randint(10_000, 99_999)}"),
        ("AS_ID", endpoint.as_id),
        ("Time", _iso_millis(now)),
    ]
    if endpoint.secret is not None:
        parameters.append(("Token", thingpark_token(uplink, parameters, endpoint.secret)))
    query = urlencode(parameters, quote_via=quote)  # the Time's '+' travels as %2B
    body = orjson.dumps({"DevEUI_uplink": uplink})
    return PreparedUplink(f"{endpoint.path}?{query}", body, {"Content-Type": "application/json"})


def chirpstack_uplink(
    device: Device, frame: bytes, decoded: dict[str, float], endpoint: LnsEndpoint, rng: random.Random
) -> PreparedUplink:
    now = datetime.now(UTC)
    dev_eui = device.dev_eui.lower()
    event = {
        "deduplicationId": str(uuid.uuid4()),
        "time": _iso_z(now),
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "sensors",
            "deviceProfileId": "14855bf7-d10d-4aee-b618-ebfcb64dc7ad",
            "deviceProfileName": "EU868 class A OTAA",
            "deviceName": f"sensor-{dev_eui[-6:]}",
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
            "tags": {"site": "paris"},
        },
        "devAddr": device.dev_addr.lower(),
        "adr": True,
        "dr": 12 - device.spreading_factor,
        "fCnt": device.f_cnt,
        "fPort": SENSOR_FPORT,
        "confirmed": False,
        "data": base64.b64encode(frame).decode(),
        "object": decoded,
        "rxInfo": [
            {
                "gatewayId": gateway_eui.lower(),
                "uplinkId": rng.getrandbits(31),
                "time": _iso_z(now),
                "rssi": int(device.base_rssi + rng.uniform(-3, 3)) - 4 * position,
                "snr": round(device.base_snr + rng.uniform(-1.5, 1.5) - position, 1),
                "channel": 2,
                "location": {"latitude": latitude, "longitude": longitude},
                "context": base64.b64encode(rng.getrandbits(32).to_bytes(4, "big")).decode(),
                "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
                "crcStatus": "CRC_OK",
            }
            for position, (_, gateway_eui, latitude, longitude) in enumerate(device.gateways)
        ],
        "txInfo": {
            "frequency": 868_300_000,
            "modulation": {
                "lora": {"bandwidth": 125_000, "spreadingFactor": device.spreading_factor, "codeRate": "CR_4_5"}
            },
        },
    }
    headers = {"Content-Type": "application/json"}
    if endpoint.secret is not None:
        headers["Authorization"] = f"Bearer {endpoint.secret}"
    return PreparedUplink(f"{endpoint.path}?event=up", orjson.dumps(event), headers)


def tts_uplink(
    device: Device, frame: bytes, decoded: dict[str, float], endpoint: LnsEndpoint, rng: random.Random
) -> PreparedUplink:
    now = datetime.now(UTC)
    timestamp = rng.getrandbits(32)
    message = {
        "end_device_ids": {
            "device_id": f"eui-{device.dev_eui.lower()}",
            "application_ids": {"application_id": endpoint.application_id},
            "dev_eui": device.dev_eui,
            "join_eui": "0000000000000000",
            "dev_addr": device.dev_addr,
        },
        "correlation_ids": [f"as:up:{uuid.uuid4().hex.upper()[:26]}", f"gs:uplink:{uuid.uuid4().hex.upper()[:26]}"],
        "received_at": _iso_z(now),
        "uplink_message": {
            "session_key_id": base64.b64encode(device.dev_addr.encode()).decode(),
            "f_port": SENSOR_FPORT,
            "f_cnt": device.f_cnt,
            "frm_payload": base64.b64encode(frame).decode(),
            "decoded_payload": decoded,
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": f"gw-{gateway_eui[-4:].lower()}", "eui": gateway_eui},
                    "time": _iso_z(now),
                    "timestamp": timestamp,
                    "rssi": int(device.base_rssi + rng.uniform(-3, 3)) - 4 * position,
                    "channel_rssi": int(device.base_rssi) - 4 * position,
                    "snr": round(device.base_snr + rng.uniform(-1.5, 1.5) - position, 1),
                    "location": {"latitude": latitude, "longitude": longitude, "source": "SOURCE_REGISTRY"},
                    "uplink_token": base64.b64encode(rng.getrandbits(64).to_bytes(8, "big")).decode(),
                    "received_at": _iso_z(now),
                }
                for position, (_, gateway_eui, latitude, longitude) in enumerate(device.gateways)
            ],
            "settings": {
                "data_rate": {
                    "lora": {"bandwidth": 125_000, "spreading_factor": device.spreading_factor, "coding_rate": "4/5"}
                },
                "frequency": "868300000",
                "timestamp": timestamp,
            },
            "received_at": _iso_z(now),
            "consumed_airtime": "0.061696s",
            "network_ids": {
                "net_id": "000013",
                "tenant_id": "ttn",
                "cluster_id": "eu1",
                "cluster_address": "eu1.cloud.thethings.network",
            },
        },
    }
    headers = {"Content-Type": "application/json"}
    if endpoint.secret is not None:
        headers["Authorization"] = f"Bearer {endpoint.secret}"
    return PreparedUplink(endpoint.path, orjson.dumps(message), headers)


def thingpark_sent_report(downlink_query: Mapping[str, str], endpoint: LnsEndpoint) -> PreparedUplink:
    """The ``DevEUI_downlink_Sent`` report ThingPark posts once a downlink it accepted went out over the air."""
    now = datetime.now(UTC)
    dev_eui = downlink_query.get("DevEUI", "")
    report = {
        "Time": _iso_millis(now),
        "DevEUI": dev_eui,
        "FPort": int(downlink_query.get("FPort", "1")),
        "FCntDn": 1,
        "CorrelationID": downlink_query.get("CorrelationID", ""),
        "DeliveryStatus": 1,
        "TransmissionSlot": 1,
        "Lrrid": _GATEWAYS[0][0],
        "CustomerID": THINGPARK_CUSTOMER_ID,
    }
    parameters = [("LrnDevEui", dev_eui), ("AS_ID", endpoint.as_id), ("Time", _iso_millis(now))]
    if endpoint.secret is not None:
        parameters.append(("Token", thingpark_token(report, parameters, endpoint.secret, REPORT_SIGNED_FIELDS)))
    body = orjson.dumps({"DevEUI_downlink_Sent": report})
    query = urlencode(parameters, quote_via=quote)
    return PreparedUplink(f"{endpoint.path}?{query}", body, {"Content-Type": "application/json"})


def prepare_uplink(device: Device, endpoint: LnsEndpoint, rng: random.Random) -> PreparedUplink:
    """The next uplink of ``device`` in its LNS's wire format."""
    frame, decoded = device.next_reading(rng)
    if device.lns == "thingpark":
        return thingpark_uplink(device, frame, endpoint, rng)
    if device.lns == "chirpstack":
        return chirpstack_uplink(device, frame, decoded, endpoint, rng)
    return tts_uplink(device, frame, decoded, endpoint, rng)


@dataclass(slots=True)
class SenderStats:
    """What the simulated LNSs saw: requests sent and the bridge's answers."""

    sent: int = 0
    accepted: int = 0  # 202
    reports_sent: int = 0  # ThingPark downlink reports
    by_status: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    rate_per_sec: float
    seed: int = 7


class LnsSimulator:
    """Sends the fleet's uplinks round-robin at ``rate_per_sec``; the schedule catches up after a slow moment."""

    def __init__(
        self,
        devices: Sequence[Device],
        endpoints: Mapping[LnsKind, LnsEndpoint],
        settings: SimulatorSettings,
        load: HttpLoad,
    ) -> None:
        if settings.rate_per_sec <= 0:
            raise ValueError("rate_per_sec must be positive")
        self.devices = list(devices)
        self.endpoints = endpoints
        self.settings = settings
        self.stats = SenderStats()
        self._load = load
        self._rng = random.Random(settings.seed)  # noqa: S311 - simulation, not security

    def _answered(self, status: int) -> None:
        if status == TRANSPORT_FAILED:
            self.stats.transport_errors += 1
            return
        self.stats.by_status[status] += 1
        if status == HTTPStatus.ACCEPTED:
            self.stats.accepted += 1

    def _report_answered(self, status: int) -> None:
        if status == TRANSPORT_FAILED:
            self.stats.transport_errors += 1
        else:
            self.stats.reports_sent += 1

    async def send_report(self, report: PreparedUplink) -> None:
        """Post a downlink report (outside the uplink counters)."""
        await self._load.request(report.request(), self._report_answered)

    async def run(self, stop: asyncio.Event) -> None:
        """Send until ``stop`` is set, then wait (bounded) for the requests in flight."""
        order = itertools.cycle(self.devices)
        started = time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - started) * self.settings.rate_per_sec) - self.stats.sent
            for _ in range(max(0, due)):
                device = next(order)
                uplink = prepare_uplink(device, self.endpoints[device.lns], self._rng)
                self.stats.sent += 1
                await self._load.request(uplink.request(), self._answered)  # waits while every connection is busy
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_SECS)
        await self._load.idle(REQUEST_TIMEOUT_SECS)
