"""The synthetic uplink, signed as each network server signs its own."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import orjson

from cli.selftest.target import SELFTEST_FPORT, THINGPARK_CUSTOMER_ID, Target


def _iso_millis(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def thingpark_token(values: Sequence[object], query: str, as_key: str) -> str:
    """ThingPark's Token: SHA-256 hex of the signed values, the query before ``&Token`` and the AS key."""
    return hashlib.sha256(("".join(str(value) for value in values) + query + as_key).encode()).hexdigest()


def uplink_request(target: Target, dev_eui: str, marker: int) -> tuple[str, bytes, dict[str, str]]:
    """Path and query, body and headers of one synthetic uplink whose frame counter is ``marker``."""
    now = datetime.now(UTC)
    payload_hex = f"{marker:08x}"
    headers = {"Content-Type": "application/json"}
    base = f"{target.ingress_url.rstrip('/')}/uplinks/{target.lns}"
    if target.lns == "thingpark":
        uplink = {
            "Time": _iso_millis(now),
            "DevEUI": dev_eui,
            "FPort": SELFTEST_FPORT,
            "FCntUp": marker,
            "payload_hex": payload_hex,
            "CustomerID": THINGPARK_CUSTOMER_ID,
        }
        parameters = [
            ("LrnDevEui", dev_eui),
            ("LrnFPort", str(SELFTEST_FPORT)),
            ("LrnInfos", "aws-iot-bridge-selftest"),
            ("AS_ID", target.as_id),
            ("Time", _iso_millis(now)),
        ]
        if target.secret is not None:
            signed = [uplink[name] for name in ("CustomerID", "DevEUI", "FPort", "FCntUp", "payload_hex")]
            query = "&".join(f"{name}={value}" for name, value in parameters)
            parameters.append(("Token", thingpark_token(signed, query, target.secret)))
        url = f"{base}?{urlencode(parameters, quote_via=quote)}"
        return url, orjson.dumps({"DevEUI_uplink": uplink}), headers
    if target.secret is not None:
        headers["Authorization"] = f"Bearer {target.secret}"
    frame = bytes.fromhex(payload_hex)
    if target.lns == "chirpstack":
        event = {
            "deduplicationId": secrets.token_hex(16),
            "time": _iso_millis(now),
            "deviceInfo": {"devEui": dev_eui.lower(), "deviceName": "aws-iot-bridge-selftest"},
            "fCnt": marker,
            "fPort": SELFTEST_FPORT,
            "data": _b64(frame),
        }
        return f"{base}?event=up", orjson.dumps(event), headers
    message = {
        "end_device_ids": {
            "device_id": f"eui-{dev_eui.lower()}",
            "application_ids": {"application_id": target.application_id or ""},
            "dev_eui": dev_eui,
        },
        "received_at": _iso_millis(now),
        "uplink_message": {"f_port": SELFTEST_FPORT, "f_cnt": marker, "frm_payload": _b64(frame)},
    }
    return base, orjson.dumps(message), headers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
