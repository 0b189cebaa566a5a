"""The thing-registration Lambda handler: cold-start environment, request validation, outcomes and metrics."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from pydantic import ValidationError

from lambdas.thing_registration.environment import Environment, EnvVar
from lambdas.thing_registration.exceptions import InvalidRequestError
from tests.unit.lambdas.conftest import FakeLambdaContext
from tests.unit.lambdas.support import emitted_metrics, load_event

HANDLER = "lambdas.thing_registration.handler"


@pytest.fixture
def registration(load_handler: Callable[..., ModuleType], thing_type: str, certificate_arn: str) -> ModuleType:
    return load_handler(HANDLER, THING_TYPE_NAME=thing_type, PRINCIPAL_ARN=certificate_arn)


def test_registers_the_batch_and_reports_each_dev_eui(
    registration: ModuleType, iot: Any, certificate_arn: str, lambda_context: FakeLambdaContext
) -> None:
    response = registration.handler(load_event("thing_registration_request"), lambda_context)

    assert response == {
        "results": [
            {"devEui": "70B3D57ED0000001", "outcome": "created", "reason": None},
            {"devEui": "70B3D57ED0000002", "outcome": "created", "reason": None},
            {"devEui": "70B3D57ED0000003", "outcome": "created", "reason": None},
        ]
    }
    assert iot.list_thing_principals(thingName="70B3D57ED0000002")["principals"] == [certificate_arn]


def test_a_repeated_batch_reports_exists_and_counts_it(
    registration: ModuleType, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    registration.handler(load_event("thing_registration_request"), lambda_context)
    first = emitted_metrics(capsys.readouterr().out)

    response = registration.handler(load_event("thing_registration_request"), lambda_context)
    second = emitted_metrics(capsys.readouterr().out)

    assert {result["outcome"] for result in response["results"]} == {"exists"}
    assert first["ThingsCreated"] == 3
    assert second["ThingsCreated"] == 0
    assert second["ThingsAlreadyRegistered"] == 3


def test_a_bad_dev_eui_fails_alone(registration: ModuleType, lambda_context: FakeLambdaContext) -> None:
    response = registration.handler({"devEuis": ["70B3D57ED0000001", "70B3D57ED00000"]}, lambda_context)

    assert [result["outcome"] for result in response["results"]] == ["created", "failed"]
    assert "16 hexadecimal digits" in response["results"][1]["reason"]


@pytest.mark.parametrize(
    "event", [{}, {"devEuis": []}, {"devEuis": "70B3D57ED0000001"}, {"devEuis": ["70B3D57ED0000001"] * 1001}]
)
def test_a_malformed_request_is_refused_as_a_whole(
    registration: ModuleType, lambda_context: FakeLambdaContext, event: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRequestError, match="devEuis"):
        registration.handler(event, lambda_context)


def test_an_invalid_environment_fails_the_cold_start(load_handler: Callable[..., ModuleType]) -> None:
    with pytest.raises(ValidationError) as raised:
        load_handler(HANDLER, THING_TYPE_NAME="lorawan device", CREATE_THING_RATE_PER_SEC="20", PRINCIPAL_ARN="cert")

    failing = {str(error["loc"][0]) for error in raised.value.errors()}
    assert failing == {EnvVar.THING_TYPE_NAME, EnvVar.CREATE_THING_RATE_PER_SEC, EnvVar.PRINCIPAL_ARN}


def test_an_empty_principal_means_none_and_the_rate_defaults_to_the_quota() -> None:
    powertools = {"POWERTOOLS_SERVICE_NAME": "s", "POWERTOOLS_METRICS_NAMESPACE": "n"}

    environment = Environment.from_environ({"THING_TYPE_NAME": "t", "PRINCIPAL_ARN": ""} | powertools)

    assert environment.principal_arn is None
    assert environment.create_thing_rate_per_sec == 15


def test_the_model_reads_exactly_the_declared_variables() -> None:
    aliases = {field.alias for field in Environment.model_fields.values()}

    assert aliases == {member.value for member in EnvVar}
