"""The local broker stands in for AWS IoT Core: mutual TLS is required on its MQTT port."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from awscrt import io, mqtt5
from awsiot import mqtt5_client_builder

from devtools.broker import LocalBroker
from devtools.pki import DevPki

pytestmark = pytest.mark.integration

OUTCOME_TIMEOUT_SECS = 10.0


class Outcome:
    """The first lifecycle outcome of a client: connected, or failed with an error name."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.connected: bool | None = None
        self.error: str | None = None

    def on_success(self, _data: Any) -> None:
        self.connected = True
        self.event.set()

    def on_failure(self, data: Any) -> None:
        if self.connected is None:
            self.connected = False
            self.error = getattr(data.exception, "name", str(data.exception))
        self.event.set()

    def wait(self) -> bool:
        assert self.event.wait(OUTCOME_TIMEOUT_SECS), "no lifecycle outcome in time"
        return bool(self.connected)


def test_client_with_a_certificate_of_the_ca_connects_over_mutual_tls(broker: LocalBroker, pki: DevPki) -> None:
    cert = pki.client("harness")
    outcome = Outcome()
    client = mqtt5_client_builder.mtls_from_path(
        str(cert.cert_path),
        str(cert.key_path),
        endpoint=broker.host,
        port=broker.ports.tls,
        ca_filepath=str(broker.ca_file),
        client_id="harness-mtls",
        on_lifecycle_connection_success=outcome.on_success,
        on_lifecycle_connection_failure=outcome.on_failure,
    )
    client.start()
    try:
        assert outcome.wait() is True
    finally:
        client.stop()


def test_client_without_a_certificate_is_refused(broker: LocalBroker) -> None:
    tls_options = io.TlsContextOptions()
    tls_options.override_default_trust_store_from_path(None, str(broker.ca_file))
    outcome = Outcome()
    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=broker.host,
            port=broker.ports.tls,
            tls_ctx=io.ClientTlsContext(tls_options),
            connect_options=mqtt5.ConnectPacket(client_id="harness-anonymous"),
            on_lifecycle_event_connection_success_fn=outcome.on_success,
            on_lifecycle_event_connection_failure_fn=outcome.on_failure,
        )
    )
    client.start()
    try:
        assert outcome.wait() is False
        assert outcome.error is not None
        assert outcome.error.startswith("AWS_IO_")
    finally:
        client.stop()
