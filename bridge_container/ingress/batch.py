"""Batches for high-rate producers: a JSON array or NDJSON of LNS documents, each recognised by its shape."""

from __future__ import annotations

from typing import Any, Final

import orjson

from bridge_container.ingress import chirpstack, thingpark, tts
from bridge_container.ingress.exceptions import BadUplinkError, PayloadTooLargeError
from bridge_container.ingress.record import UplinkRecord

MAX_BATCH_ITEMS: Final = 10_000


def split(body: bytes) -> list[tuple[object, bytes | None]]:
    """The items of a batch with, for NDJSON, each line's bytes (published as received)."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadUplinkError("malformed", f"the batch is not valid JSON: {exc}") from None
        pairs: list[tuple[object, bytes | None]] = [(item, None) for item in items]
    else:
        pairs = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            line = line.strip()
            if not line:
                continue
            try:
                pairs.append((orjson.loads(line), line))
            except orjson.JSONDecodeError as exc:
                raise BadUplinkError("malformed", f"NDJSON line {number} is not valid JSON: {exc}") from None
    if not pairs:
        raise BadUplinkError("malformed", "the batch is empty")
    if len(pairs) > MAX_BATCH_ITEMS:
        raise PayloadTooLargeError("too_many_items", f"a batch holds at most {MAX_BATCH_ITEMS} uplinks")
    return pairs


def parse_item(item: object, raw: bytes | None) -> UplinkRecord:
    """One batch item: ThingPark ``DevEUI_uplink``, TTS ``uplink_message`` or a ChirpStack ``up`` event."""
    if not isinstance(item, dict):
        raise BadUplinkError("malformed", "each batch item must be a JSON object")
    document: dict[str, Any] = item
    if thingpark.UPLINK_ROOT in document:
        return thingpark.parse_uplink(document, raw)
    if tts.UPLINK_KEY in document:
        return tts.parse_uplink(document, raw)
    if "deviceInfo" in document:
        return chirpstack.parse_up(document, raw)
    raise BadUplinkError("malformed", "not an uplink: expected DevEUI_uplink, uplink_message or a ChirpStack up event")
