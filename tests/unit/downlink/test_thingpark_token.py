"""ThingPark downlink Token: SHA-256 over the unencoded query string followed by the AS key."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import httpx

from bridge_container.downlink.documents import DownlinkRequest
from bridge_container.downlink.thingpark import ThingParkAdapter, signed_query
from bridge_domain.lns import ThingParkLns

# A published example of ThingPark's AS authentication (the key and token as printed there).
EXAMPLE_PARAMETERS = [
    ("DevEUI", "000000000F1D8693"),
    ("FPort", "1"),
    ("Payload", "00"),
    ("AS_ID", "app1.sample.com"),
    ("Time", "2016-01-11T14:28:00"),
]
EXAMPLE_AS_KEY = "46ab678cd45df4a4e4b375Eacd096acc"
EXAMPLE_TOKEN = "b5a84fe9c8921e9de359e3041a37b76c4b122f6f9b83577b5596c842052f7e62"


def test_signed_query_reproduces_the_published_example_token() -> None:
    query = signed_query(EXAMPLE_PARAMETERS, EXAMPLE_AS_KEY)
    assert query.endswith(f"&Token={EXAMPLE_TOKEN}")


async def test_the_token_covers_the_unencoded_time_while_the_wire_carries_it_encoded() -> None:
    as_key = "00112233445566778899aabbccddeeff"
    time = "2016-07-05T08:58:26.911+02:00"
    adapter = ThingParkAdapter(
        ThingParkLns.model_validate(
            {"asId": "as.example", "asKey": as_key, "downlinkUrl": "https://lns.example/thingpark/lrc/rest/downlink"}
        ),
        timestamp=lambda: time,
    )
    request = DownlinkRequest("0059AC000010020D", 2, b"\xbe\xef", confirmed=True, correlation_id="4434704901C7450B")
    call = adapter.prepare(request)
    async with httpx.AsyncClient() as client:
        built = call.build(client)
    expected_plain = (
        "DevEUI=0059AC000010020D&FPort=2&Payload=beef&Confirmed=1&CorrelationID=4434704901C7450B"
        "&AS_ID=as.example&Time=2016-07-05T08:58:26.911+02:00"
    )
    expected_token = hashlib.sha256((expected_plain + as_key).encode()).hexdigest()
    raw_query = urlsplit(str(built.url)).query
    assert built.method == "POST"
    assert raw_query == (
        "DevEUI=0059AC000010020D&FPort=2&Payload=beef&Confirmed=1&CorrelationID=4434704901C7450B"
        f"&AS_ID=as.example&Time=2016-07-05T08%3A58%3A26.911%2B02%3A00&Token={expected_token}"
    )


async def test_without_an_as_key_neither_time_nor_token_is_sent() -> None:
    adapter = ThingParkAdapter(ThingParkLns(as_id="as.example"), timestamp=lambda: "2016-01-11T14:28:00")
    call = adapter.prepare(DownlinkRequest("0059AC000010020D", 1, b"\x00"))
    async with httpx.AsyncClient() as client:
        query = urlsplit(str(call.build(client).url)).query
    assert "Token=" not in query
    assert "Time=" not in query
    assert query.startswith("DevEUI=0059AC000010020D&FPort=1&Payload=00&CorrelationID=")
