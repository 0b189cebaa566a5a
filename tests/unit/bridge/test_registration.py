"""The registrar: unknown DevEUIs registered in the background, known ones free, failures retried later."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import boto3
import orjson
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from bridge_container.exceptions import RegistrationError
from bridge_container.metrics import UplinkMetrics, new_registry
from bridge_container.registration import BatchingRegistrar, LambdaBackend, RegistrarSettings, registration_settings
from bridge_domain.connection import ConnectionConfiguration
from bridge_domain.quotas import CREATE_THING_PER_SEC
from bridge_domain.registration import RegistrationOutcome, RegistrationResult
from tests.metrics import sample_value

DEV_A, DEV_B, DEV_C = "70B3D57ED0000001", "70B3D57ED0000002", "70B3D57ED0000003"


@dataclass
class FakeBackend:
    failing: set[str] = field(default_factory=set)
    calls: list[list[str]] = field(default_factory=list)
    raise_error: bool = False

    async def register(self, dev_euis: Sequence[str]) -> list[RegistrationResult]:
        self.calls.append(list(dev_euis))
        if self.raise_error:
            raise RegistrationError("backend down")
        return [
            RegistrationResult(dev, RegistrationOutcome.FAILED, "nope")
            if dev in self.failing
            else RegistrationResult(dev, RegistrationOutcome.CREATED)
            for dev in dev_euis
        ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def idle(registrar: BatchingRegistrar) -> None:
    for _ in range(100):
        if registrar.pending == 0:
            await asyncio.sleep(0.01)
            return
        await asyncio.sleep(0.005)


async def test_known_dev_euis_cost_no_call() -> None:
    backend = FakeBackend()
    registry = new_registry()
    registrar = BatchingRegistrar("default", backend, UplinkMetrics(registry))
    await registrar.start()
    try:
        registrar.observe(DEV_A)
        registrar.observe(DEV_A)  # still queued: not asked twice
        await idle(registrar)
        for _ in range(5):
            registrar.observe(DEV_A)
        await idle(registrar)
    finally:
        await registrar.stop()
    assert backend.calls == [[DEV_A]]
    assert sample_value(registry, "bridge_registrations_total", {"outcome": "created"}) == 1


async def test_failures_are_retried_after_the_pause_only() -> None:
    backend = FakeBackend(failing={DEV_B})
    clock = Clock()
    registrar = BatchingRegistrar(
        "default", backend, UplinkMetrics(new_registry()), RegistrarSettings(retry_after_failure_secs=60), clock=clock
    )
    await registrar.start()
    try:
        registrar.observe(DEV_B)
        await idle(registrar)
        registrar.observe(DEV_B)
        await idle(registrar)
        clock.now = 61
        registrar.observe(DEV_B)
        await idle(registrar)
    finally:
        await registrar.stop()
    assert backend.calls == [[DEV_B], [DEV_B]]


async def test_a_failing_backend_call_fails_each_dev_eui_without_crashing() -> None:
    backend = FakeBackend(raise_error=True)
    registry = new_registry()
    registrar = BatchingRegistrar("default", backend, UplinkMetrics(registry))
    await registrar.start()
    try:
        registrar.observe(DEV_A)
        registrar.observe(DEV_B)
        await idle(registrar)
    finally:
        await registrar.stop()
    assert sample_value(registry, "bridge_registrations_total", {"outcome": "failed"}) == 2


async def test_the_known_cache_is_bounded_and_the_queue_too() -> None:
    backend = FakeBackend()
    registry = new_registry()
    settings = RegistrarSettings(known_cache_size=2, max_pending=2)
    registrar = BatchingRegistrar("default", backend, UplinkMetrics(registry), settings)
    for dev in (DEV_A, DEV_B, DEV_C):  # not started: the queue fills
        registrar.observe(dev)
    assert registrar.pending == 2
    assert sample_value(registry, "bridge_registrations_total", {"outcome": "skipped_queue_full"}) == 1
    await registrar.start()
    try:
        await idle(registrar)
        registrar.observe(DEV_C)
        await idle(registrar)
        calls_before = len(backend.calls)
        for dev in (DEV_A, DEV_B, DEV_C):  # A fell out of the bounded cache and is asked again; B and C are known
            registrar.observe(dev)
        await idle(registrar)
    finally:
        await registrar.stop()
    assert backend.calls[calls_before:] == [[DEV_A]]


def test_registration_settings_attach_the_certificate_only_when_its_arn_is_known() -> None:
    base = {"deviceType": "sensor", "region": "eu-central-1", "protocol": "WSS", "accountPrefix": "abcdefgh-ats"}
    arn = "arn:aws:iot:eu-central-1:123456789012:cert/" + "ab" * 32
    with_arn = registration_settings(ConnectionConfiguration.model_validate({**base, "certificateId": arn}))
    with_id = registration_settings(ConnectionConfiguration.model_validate({**base, "certificateId": "ab" * 32}))
    assert (with_arn.thing_type, with_arn.principal_arn) == ("sensor", arn)
    assert with_id.principal_arn is None


def lambda_client_answering(payload: object, *, function_error: str | None = None) -> tuple[object, Stubber]:
    client = boto3.client("lambda", region_name="eu-central-1")
    stubber = Stubber(client)
    body = orjson.dumps(payload)
    response: dict[str, object] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if function_error:
        response["FunctionError"] = function_error
    stubber.add_response(
        "invoke",
        response,
        {
            "FunctionName": "register",
            "InvocationType": "RequestResponse",
            "Payload": orjson.dumps({"devEuis": [DEV_A]}),
        },
    )
    stubber.activate()
    return client, stubber


async def test_lambda_backend_sends_the_agreed_event_and_reads_the_results() -> None:
    client, stubber = lambda_client_answering({"results": [{"devEui": DEV_A, "outcome": "exists", "reason": None}]})
    results = await LambdaBackend("register", client=client).register([DEV_A])
    stubber.assert_no_pending_responses()
    assert results == [RegistrationResult(DEV_A, RegistrationOutcome.EXISTS, None)]


async def test_lambda_backend_turns_a_function_error_into_a_registration_error() -> None:
    client, _ = lambda_client_answering({"errorMessage": "boom"}, function_error="Unhandled")
    with pytest.raises(RegistrationError, match="boom"):
        await LambdaBackend("register", client=client).register([DEV_A])


def test_in_process_registration_paces_at_the_rate_it_is_given() -> None:
    base = {"deviceType": "sensor", "region": "eu-central-1", "protocol": "WSS", "accountPrefix": "abcdefgh-ats"}
    config = ConnectionConfiguration.model_validate(base)
    assert registration_settings(config).max_calls_per_sec == CREATE_THING_PER_SEC
    assert registration_settings(config, CREATE_THING_PER_SEC / 3).max_calls_per_sec == 5.0
