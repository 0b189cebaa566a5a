"""Operations pieces: EMF lines, JSON logs, metric cleanup, settings from the environment, routing, adapter rules."""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

import orjson
import pytest

from bridge_container.ingress.http import match_ingress_path
from bridge_container.logs import JsonFormatter
from bridge_container.metrics import EmfEmitter, UplinkMetrics, new_registry, render
from bridge_container.mqtt.crt import classify_failure
from bridge_container.mqtt.port import ReconnectSettings, client_settings
from bridge_container.settings import ServiceSettings
from bridge_container.states import ClientReport, ConnectionState, StateReport, pool_state
from bridge_domain.connection import ConnectionConfiguration


def test_emf_lines_carry_counter_increases_per_connection() -> None:
    registry = new_registry()
    metrics = UplinkMetrics(registry)
    stream = io.StringIO()
    emitter = EmfEmitter(registry, stream=stream, clock=lambda: 1_700_000_000.0)
    metrics.accepted.labels("default", "thingpark").inc(5)
    metrics.accepted.labels("default", "batch").inc(2)
    metrics.dropped.labels("default", "publish_failed").inc()
    emitter.emit()
    metrics.accepted.labels("default", "thingpark").inc(1)
    emitter.emit()
    documents = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    first, second = (d for d in documents if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ConnectionId"]])
    assert (first["UplinksAccepted"], first["UplinksDropped"], second["UplinksAccepted"]) == (7, 1, 1)
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "AwsIotBridge"
    assert directive["Dimensions"] == [["ConnectionId"]]
    assert {"Name": "UplinksPublished", "Unit": "Count"} in directive["Metrics"]
    assert first["ConnectionId"] == "default"
    assert first["_aws"]["Timestamp"] == 1_700_000_000_000


def test_emf_breakdowns_carry_each_reason_and_state_as_a_dimension() -> None:
    registry = new_registry()
    metrics = UplinkMetrics(registry)
    stream = io.StringIO()
    emitter = EmfEmitter(registry, stream=stream, clock=lambda: 1_700_000_000.0)
    metrics.dropped.labels("default", "publish_failed").inc(2)
    metrics.dropped.labels("default", "shutdown").inc()
    metrics.rejected.labels("default", "thingpark", "token_mismatch").inc()
    metrics.unauthorized.labels("default", "thingpark").inc()
    metrics.client_state.labels("default", "c-0").state("OPENED")
    metrics.client_state.labels("default", "c-1").state("AUTHENTICATION_FAILED")
    emitter.emit()
    metrics.dropped.labels("default", "shutdown").inc(4)
    emitter.emit()
    documents: list[dict[str, Any]] = [orjson.loads(line) for line in stream.getvalue().splitlines()]

    def find(emission: int, **dimensions: str) -> dict[str, Any]:
        per_emission = len(documents) // 2
        [document] = [
            d
            for d in documents[emission * per_emission : (emission + 1) * per_emission]
            if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["ConnectionId", *dimensions]]
            and all(d.get(key) == value for key, value in dimensions.items())
        ]
        return document

    assert find(0)["UplinksDropped"] == 3
    assert find(0)["IngressUnauthorized"] == 1
    assert find(0, Reason="publish_failed")["UplinksDropped"] == 2
    assert find(1, Reason="shutdown")["UplinksDropped"] == 4  # the increase since the last line
    assert find(0, Reason="token_mismatch")["UplinksRejected"] == 1
    assert find(0, State="AUTHENTICATION_FAILED")["MqttClients"] == 1
    assert find(0, State="OPENED")["MqttClients"] == 1
    assert find(0, State="CLOSED")["MqttClients"] == 0
    assert "UplinksDropped" not in find(0, State="OPENED")


def test_forget_removes_every_series_of_a_connection() -> None:
    registry = new_registry()
    metrics = UplinkMetrics(registry)
    metrics.accepted.labels("gone", "thingpark").inc()
    metrics.client_state.labels("gone", "c-0").state("OPENED")
    metrics.accepted.labels("kept", "thingpark").inc()
    metrics.forget("gone")
    text = render(registry).decode()
    assert 'connection="gone"' not in text
    assert 'connection="kept"' in text


def test_json_log_lines_hold_extra_fields_and_exceptions() -> None:
    record = logging.LogRecord("bridge", logging.WARNING, __file__, 1, "client %s failed", ("c-0",), None)
    record.connection_id = "default"
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = orjson.loads(JsonFormatter().format(record))
    assert (line["level"], line["message"], line["connection_id"]) == ("WARNING", "client c-0 failed", "default")
    assert "ValueError: boom" in line["exception"]


def test_settings_from_the_environment_with_explicit_values_first() -> None:
    env = {"BRIDGE_HTTP_PORT": "9000", "BRIDGE_TASK_ID": "t1", "BRIDGE_LIFT_RATE_LIMITS": "true"}
    settings = ServiceSettings.from_env(env, host="0.0.0.0", port=None)
    assert (settings.port, settings.task_id, settings.host, settings.lift_rate_limits) == (9000, "t1", "0.0.0.0", True)
    assert ServiceSettings.from_env({}, task_id="x").drain_deadline_secs == 20.0


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/uplinks/thingpark", (None, "thingpark")),
        ("/connections/c1/uplinks/tts", ("c1", "tts")),
        ("/connections/c1", None),
        ("/uplinks/", None),
        ("/uplinks/a/b", None),
        ("/connections//uplinks/x", None),
    ],
)
def test_ingress_paths(path: str, expected: tuple[str | None, str] | None) -> None:
    assert match_ingress_path(path) == expected


@pytest.mark.parametrize(
    ("error", "connack", "expected"),
    [
        ("AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE", None, ConnectionState.AUTHENTICATION_FAILED),
        ("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", None, ConnectionState.AUTHENTICATION_FAILED),
        ("AWS_ERROR_MQTT5_CONNACK_CONNECTION_REFUSED", 135, ConnectionState.AUTHENTICATION_FAILED),
        ("AWS_IO_SOCKET_CONNECTION_REFUSED", None, ConnectionState.UNREACHABLE),
        ("AWS_IO_DNS_INVALID_NAME", None, ConnectionState.UNREACHABLE),
        ("AWS_ERROR_MQTT5_CONNACK_CONNECTION_REFUSED", 137, ConnectionState.CLOSED),
    ],
)
def test_connection_failures_are_classified(error: str, connack: int | None, expected: ConnectionState) -> None:
    assert classify_failure(error, connack) is expected


def test_pool_state_is_the_best_client_state() -> None:
    assert pool_state([ConnectionState.CLOSED, ConnectionState.OPENED]) is ConnectionState.OPENED
    assert (
        pool_state([ConnectionState.AUTHENTICATION_FAILED, ConnectionState.UNREACHABLE]) is ConnectionState.UNREACHABLE
    )
    assert pool_state([]) is ConnectionState.DEACTIVATED


def test_pool_report_names_the_client_in_the_pool_state_and_its_error() -> None:
    refused = ClientReport("bridge-0", ConnectionState.AUTHENTICATION_FAILED, "certificate refused (X)")
    unreachable = ClientReport("bridge-1", ConnectionState.UNREACHABLE, "no route (Y)")
    silent = ClientReport("bridge-2", ConnectionState.OPENING)
    report = StateReport.of_clients([refused, unreachable])
    assert (report.state, report.reason) == (ConnectionState.UNREACHABLE, "bridge-1: no route (Y)")
    assert report.clients == (refused, unreachable)
    assert StateReport.of_clients([refused, silent]).reason == "bridge-2: connecting"
    opened = StateReport.of_clients([unreachable, ClientReport("bridge-3", ConnectionState.OPENED)])
    assert (opened.state, opened.reason) == (ConnectionState.OPENED, None)
    assert StateReport.of_clients([]) == StateReport(ConnectionState.DEACTIVATED, "stopped")


def test_client_settings_derive_ids_endpoint_and_keep_secrets_out_of_repr() -> None:
    config = ConnectionConfiguration.model_validate(
        {
            "deviceType": "sensor",
            "region": "eu-west-1",
            "protocol": "WSS",
            "accountPrefix": "a1b2c3d4e5f6-ats",
            "accessKeyId": "AKIAABCDEFGHIJKLMNOP",
            "secretAccessKey": "very-secret-value",
            "keepAliveSecs": 300,
        }
    )
    settings = client_settings(config, "task-42", 3)
    assert settings.client_id == "iot-bridge-task42-3"
    assert (settings.endpoint, settings.port, settings.keep_alive_secs) == (
        "a1b2c3d4e5f6-ats.iot.eu-west-1.amazonaws.com",
        443,
        300,
    )
    assert settings.secret_access_key == "very-secret-value"
    assert "very-secret" not in repr(settings)


def test_reconnect_never_faster_than_once_a_second() -> None:
    with pytest.raises(ValueError, match="min >= 1 s"):
        ReconnectSettings(min_delay_secs=0.5)
