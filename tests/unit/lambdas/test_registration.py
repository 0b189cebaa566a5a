"""Shared thing registration on moto: outcomes, idempotency, conflicts, throttling and the CreateThing rate."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError

from bridge_domain.naming import CREATED_BY_ATTRIBUTE, CREATED_BY_VALUE, DEV_EUI_ATTRIBUTE
from bridge_domain.registration import (
    RegistrationOutcome,
    RegistrationResult,
    RegistrationSettings,
    register_things,
)
from tests.unit.lambdas.support import FakeClock, InjectedErrors, error_response, max_calls_in_any_second

CREATED = RegistrationOutcome.CREATED
EXISTS = RegistrationOutcome.EXISTS
FAILED = RegistrationOutcome.FAILED


def dev_euis(count: int, start: int = 1) -> list[str]:
    return [f"70B3D57ED{number:07X}" for number in range(start, start + count)]


def register(iot: Any, euis: list[str], settings: RegistrationSettings, clock: FakeClock) -> list[RegistrationResult]:
    return register_things(iot, euis, settings, clock=clock, sleep=clock.sleep)


def reason_of(result: RegistrationResult) -> str:
    assert result.reason is not None
    return result.reason


def principals_of(iot: Any, name: str) -> list[str]:
    principals: list[str] = iot.list_thing_principals(thingName=name)["principals"]
    return principals


def test_creates_things_with_type_attributes_and_principal(iot: Any, thing_type: str, certificate_arn: str) -> None:
    settings = RegistrationSettings(thing_type, certificate_arn)

    results = register(iot, ["70b3d57ed0000001", "70B3D57ED0000002"], settings, FakeClock())

    assert [(r.dev_eui, r.outcome, r.reason) for r in results] == [
        ("70B3D57ED0000001", CREATED, None),
        ("70B3D57ED0000002", CREATED, None),
    ]
    thing = iot.describe_thing(thingName="70B3D57ED0000001")
    assert thing["thingTypeName"] == thing_type
    assert thing["attributes"] == {DEV_EUI_ATTRIBUTE: "70B3D57ED0000001", CREATED_BY_ATTRIBUTE: CREATED_BY_VALUE}
    assert principals_of(iot, "70B3D57ED0000001") == [certificate_arn]


def test_a_second_call_changes_nothing_and_reports_exists(iot: Any, thing_type: str, certificate_arn: str) -> None:
    settings = RegistrationSettings(thing_type, certificate_arn)
    register(iot, dev_euis(3), settings, FakeClock())
    before = {thing["thingName"]: thing for thing in iot.list_things()["things"]}
    calls: list[str] = []
    iot.meta.events.register("before-call.iot.CreateThing", lambda **_: calls.append("CreateThing"))

    results = register(iot, dev_euis(3), settings, FakeClock())

    assert {r.outcome for r in results} == {EXISTS}
    assert calls == []
    assert {thing["thingName"]: thing for thing in iot.list_things()["things"]} == before
    assert all(principals_of(iot, name) == [certificate_arn] for name in before)


def test_a_thing_of_another_type_is_a_clear_failure_for_that_dev_eui(iot: Any, thing_type: str) -> None:
    iot.create_thing_type(thingTypeName="vending-machine")
    iot.create_thing(thingName="70B3D57ED0000002", thingTypeName="vending-machine")
    iot.create_thing(thingName="70B3D57ED0000003")

    results = register(iot, dev_euis(3), RegistrationSettings(thing_type), FakeClock())

    assert [r.outcome for r in results] == [CREATED, FAILED, FAILED]
    assert "vending-machine" in reason_of(results[1])
    assert "(none)" in reason_of(results[2])
    assert iot.describe_thing(thingName="70B3D57ED0000002")["thingTypeName"] == "vending-machine"


def test_an_existing_thing_the_bridge_did_not_create_gets_no_certificate(
    iot: Any, thing_type: str, certificate_arn: str
) -> None:
    iot.create_thing(thingName="70B3D57ED0000001", thingTypeName=thing_type)

    results = register(iot, dev_euis(1), RegistrationSettings(thing_type, certificate_arn), FakeClock())

    assert results[0].outcome is EXISTS
    assert principals_of(iot, "70B3D57ED0000001") == []


def test_a_registration_interrupted_before_attaching_is_repaired(
    iot: Any, thing_type: str, certificate_arn: str
) -> None:
    register(iot, dev_euis(1), RegistrationSettings(thing_type), FakeClock())
    assert principals_of(iot, "70B3D57ED0000001") == []

    results = register(iot, dev_euis(1), RegistrationSettings(thing_type, certificate_arn), FakeClock())

    assert results[0].outcome is EXISTS
    assert principals_of(iot, "70B3D57ED0000001") == [certificate_arn]


def test_an_attachment_that_fails_is_reported_and_repaired_by_the_next_registration(
    iot: Any, thing_type: str, certificate_arn: str
) -> None:
    settings = RegistrationSettings(thing_type, certificate_arn, max_attempts=2)
    refused = InjectedErrors("ServiceUnavailableException", "try later", times=2, status=503)
    iot.meta.events.register("before-call.iot.AttachThingPrincipal", refused)

    first = register(iot, dev_euis(1), settings, FakeClock())
    second = register(iot, dev_euis(1), settings, FakeClock())

    assert first[0].outcome is FAILED
    assert "attaching the certificate failed: try later" in reason_of(first[0])
    assert second[0].outcome is EXISTS
    assert principals_of(iot, "70B3D57ED0000001") == [certificate_arn]


def test_a_thing_created_concurrently_with_another_type_fails_after_create_conflict(iot: Any, thing_type: str) -> None:
    other = boto3.client("iot")
    other.create_thing_type(thingTypeName="gateway")

    def created_meanwhile(**_: Any) -> Any:
        other.create_thing(thingName="70B3D57ED0000001", thingTypeName="gateway")
        return error_response("ResourceAlreadyExistsException", "thing 70B3D57ED0000001 already exists", 409)

    iot.meta.events.register("before-call.iot.CreateThing", created_meanwhile)

    results = register(iot, dev_euis(1), RegistrationSettings(thing_type), FakeClock())

    assert results[0].outcome is FAILED
    assert "gateway" in reason_of(results[0])


def test_invalid_and_repeated_dev_euis_get_one_result_each_in_input_order(iot: Any, thing_type: str) -> None:
    results = register(
        iot, ["70B3D57ED0000001", "not-a-deveui", "70b3d57ed0000001"], RegistrationSettings(thing_type), FakeClock()
    )

    assert [r.outcome for r in results] == [CREATED, FAILED, CREATED]
    assert results[1].dev_eui == "not-a-deveui"
    assert "16 hexadecimal digits" in reason_of(results[1])
    assert len(iot.list_things()["things"]) == 1


def test_throttling_is_retried_with_growing_backoff(iot: Any, thing_type: str) -> None:
    throttle = InjectedErrors("ThrottlingException", "Rate exceeded", times=3, status=429)
    iot.meta.events.register("before-call.iot.CreateThing", throttle)
    clock = FakeClock()

    results = register(iot, dev_euis(1), RegistrationSettings(thing_type), clock)

    assert results[0].outcome is CREATED
    assert throttle.injected == 3
    backoffs = [secs for secs in clock.sleeps if secs > 0.1]  # the limiter's own waits are 1/15 s
    assert len(backoffs) == 3
    assert backoffs[0] < backoffs[2]


def test_throttling_that_never_ends_fails_that_dev_eui_after_max_attempts(iot: Any, thing_type: str) -> None:
    throttle = InjectedErrors("ThrottlingException", "Rate exceeded", times=1_000, status=429)
    iot.meta.events.register("before-call.iot.CreateThing", throttle)

    results = register(iot, dev_euis(2), RegistrationSettings(thing_type, max_attempts=4), FakeClock())

    assert [r.outcome for r in results] == [FAILED, FAILED]
    assert "ThrottlingException" in reason_of(results[0])
    assert "4 attempts" in reason_of(results[0])
    assert throttle.injected == 8


def test_a_dropped_connection_is_retried_but_missing_credentials_are_not(iot: Any, thing_type: str) -> None:
    failures = [EndpointConnectionError(endpoint_url="https://iot.eu-central-1.amazonaws.com")]

    def drop_once(**_: Any) -> None:
        if failures:
            raise failures.pop()

    iot.meta.events.register("before-call.iot.DescribeThing", drop_once)
    assert register(iot, dev_euis(1), RegistrationSettings(thing_type), FakeClock())[0].outcome is CREATED

    def no_credentials(**_: Any) -> None:
        raise NoCredentialsError

    iot.meta.events.register("before-call.iot.DescribeThing", no_credentials)
    with pytest.raises(NoCredentialsError):
        register(iot, dev_euis(1, start=2), RegistrationSettings(thing_type), FakeClock())


def test_a_missing_thing_type_fails_each_dev_eui_without_retrying(iot: Any) -> None:
    calls: list[str] = []
    iot.meta.events.register("before-call.iot.CreateThing", lambda **_: calls.append("CreateThing"))

    results = register(iot, dev_euis(2), RegistrationSettings("no-such-type"), FakeClock())

    assert [r.outcome for r in results] == [FAILED, FAILED]
    assert reason_of(results[0]).startswith("ResourceNotFoundException")
    assert len(calls) == 2


def test_one_thousand_dev_euis_never_exceed_fifteen_create_thing_calls_per_second(
    iot: Any, thing_type: str, certificate_arn: str
) -> None:
    clock = FakeClock()
    create_times: list[float] = []
    attach_times: list[float] = []
    iot.meta.events.register("before-call.iot.CreateThing", lambda **_: create_times.append(clock()))
    iot.meta.events.register("before-call.iot.AttachThingPrincipal", lambda **_: attach_times.append(clock()))
    # A few throttled calls on the way: retries must stay within the rate too.
    iot.meta.events.register(
        "before-call.iot.CreateThing", InjectedErrors("ThrottlingException", "Rate exceeded", times=3, status=429)
    )

    results = register(iot, dev_euis(1000), RegistrationSettings(thing_type, certificate_arn), clock)

    assert [r.outcome for r in results] == [CREATED] * 1000
    assert len(create_times) == 1003
    assert max_calls_in_any_second(create_times) <= 15
    assert max_calls_in_any_second(attach_times) <= 15
    # The limit is also reached, not just respected: 1,000 things take little more than 1000/15 s.
    assert clock.now < 1000 / 15 + 30


@pytest.mark.parametrize(("field", "value"), [("thing_type", ""), ("max_calls_per_sec", 0), ("max_attempts", 0)])
def test_invalid_settings_are_refused(field: str, value: object) -> None:
    arguments: dict[str, Any] = {"thing_type": "t"} | {field: value}
    with pytest.raises(ValueError, match=field):
        RegistrationSettings(**arguments)
