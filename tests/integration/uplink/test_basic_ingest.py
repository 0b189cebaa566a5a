"""Uplinks through Basic Ingest: over HTTP into the bridge, out to ``$aws/rules/<rule>/...`` at the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from bridge_container.service import BridgeService
from bridge_container.settings import ServiceSettings
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from devtools.ports import free_port
from tests.integration.uplink.conftest import connection_document, wait_until
from tests.integration.uplink.test_bridge_http import RunningBridge

pytestmark = pytest.mark.integration

RULE = "it_basic_ingest_uplinks"
# Seven slashes, AWS IoT's most: the $aws/rules/<rule>/ prefix does not count, so the stand-in takes all ten.
PATTERN = "ingest/lora/eu/{CustomerData.site|'none'}/{DevEUI}/up/json/v1"


@pytest.fixture
async def ingest_bridge() -> AsyncIterator[RunningBridge]:
    settings = ServiceSettings(task_id="basicingest", port=free_port(), emf_interval_secs=0, drain_deadline_secs=1)
    running = RunningBridge(BridgeService(settings))
    await running.start()
    yield running
    await running.stop()


def uplink(dev_eui: str, **fields: Any) -> bytes:
    return orjson.dumps({"DevEUI_uplink": {"DevEUI": dev_eui, "FPort": 1, "FCntUp": 1, "payload_hex": "00", **fields}})


async def test_uplinks_go_to_the_rule_prefix_counted_as_basic_ingest_and_reach_no_subscriber(
    ingest_bridge: RunningBridge, broker: LocalBroker, pki: DevPki, subscribe: Callable[..., Any]
) -> None:
    assert broker.stand_in is not None
    before = broker.stand_in.report()["basic_ingest"].get(RULE, 0)
    plain = await subscribe(broker, "ingest/#")
    document = connection_document(
        broker, pki.client("bridge"), uplinkTopicPattern=PATTERN, uplinkDelivery="basicIngest", basicIngestRule=RULE
    )
    await ingest_bridge.service.add_connection("default", Connection.model_validate(document))
    await wait_until(lambda: ingest_bridge.service.connection_state("default") is ConnectionState.OPENED)

    answers = [
        await ingest_bridge.http.post("/uplinks/thingpark", content=uplink("70B3D57ED0000011", CustomerData={})),
        await ingest_bridge.http.post(
            "/uplinks/thingpark", content=uplink("70B3D57ED0000012", CustomerData={"site": "north"})
        ),
    ]
    assert [answer.status_code for answer in answers] == [202, 202]
    await wait_until(
        lambda: broker.stand_in is not None and broker.stand_in.report()["basic_ingest"].get(RULE) == before + 2
    )

    topics = broker.stand_in.report()["basic_ingest_topics"]
    assert f"$aws/rules/{RULE}/ingest/lora/eu/none/70B3D57ED0000011/up/json/v1" in topics
    assert f"$aws/rules/{RULE}/ingest/lora/eu/north/70B3D57ED0000012/up/json/v1" in topics
    assert plain.snapshot() == []
