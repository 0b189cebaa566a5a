"""The teardown custom resource on moto: only bridge things go, principals first; Create/Update destroy nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from bridge_domain.naming import CREATED_BY_ATTRIBUTE, CREATED_BY_VALUE, DEV_EUI_ATTRIBUTE
from bridge_domain.quotas import DELETE_THING_PER_SEC
from lambdas.teardown import logic
from lambdas.teardown.environment import Environment, EnvVar
from lambdas.teardown.exceptions import InvalidRequestError, TeardownStuckError
from lambdas.teardown.throttle import RateGate
from tests.unit.lambdas.conftest import FakeLambdaContext
from tests.unit.lambdas.support import FakeClock, InjectedErrors, emitted_metrics, load_event, max_calls_in_any_second

HANDLER = "lambdas.teardown.handler"
# Fast gates for moto; the quotas themselves are covered by the RateGate test.
FAST = logic.TeardownRates(
    list_things_per_sec=1000, list_principals_per_sec=1000, detach_per_sec=1000, delete_per_sec=1000
)


@dataclass(frozen=True)
class Fleet:
    bridge_things: list[str]
    foreign_things: list[str]
    certificate_arn: str


@pytest.fixture
def fleet(iot: Any, thing_type: str, certificate_arn: str) -> Fleet:
    """25 bridge things with the bridge certificate, and things teardown must leave alone (some sharing it)."""
    marker = {CREATED_BY_ATTRIBUTE: CREATED_BY_VALUE}
    bridge = [f"70B3D57ED{number:07X}" for number in range(1, 26)]
    for name in bridge:
        iot.create_thing(
            thingName=name,
            thingTypeName=thing_type,
            attributePayload={"attributes": {DEV_EUI_ATTRIBUTE: name} | marker},
        )
        iot.attach_thing_principal(thingName=name, principal=certificate_arn)
    iot.create_thing_type(thingTypeName="other-bridge-type")
    foreign: dict[str, dict[str, Any]] = {
        "customer-thing-same-type": {"thingTypeName": thing_type},
        "customer-thing-no-type": {"attributePayload": {"attributes": {"owner": "customer"}}},
        "other-deployment-thing": {"thingTypeName": "other-bridge-type", "attributePayload": {"attributes": marker}},
    }
    for name, extra in foreign.items():
        iot.create_thing(thingName=name, **extra)
    iot.attach_thing_principal(thingName="customer-thing-same-type", principal=certificate_arn)
    return Fleet(bridge, sorted(foreign), certificate_arn)


def thing_names(iot: Any) -> list[str]:
    names: list[str] = []
    for page in iot.get_paginator("list_things").paginate():
        names.extend(thing["thingName"] for thing in page["things"])
    return sorted(names)


def settings(thing_type: str, **overrides: Any) -> logic.TeardownSettings:
    defaults: dict[str, Any] = {"rates": FAST, "page_size": 7, "safety_margin_secs": 0.0, "detach_propagation_secs": 0}
    return logic.TeardownSettings(thing_type=thing_type, **(defaults | overrides))


def poll_until_complete(iot: Any, teardown_settings: logic.TeardownSettings, metrics: Any, budget_secs: float) -> int:
    event = load_event("cfn_delete")
    for polls in range(1, 20):
        if logic.is_complete(event, iot, teardown_settings, metrics, budget_secs)["IsComplete"]:
            return polls
    raise AssertionError("teardown did not complete in 20 polls")


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    recorder = Metrics(namespace="AwsIotBridgeTest")
    yield recorder
    recorder.clear_metrics()


def metric_total(metrics: Metrics, name: str) -> float:
    total: float = sum(metrics.metric_set[name]["Value"])
    return total


def test_delete_removes_every_bridge_thing_and_leaves_the_others(
    iot: Any, thing_type: str, fleet: Fleet, metrics: Metrics
) -> None:
    polls = poll_until_complete(iot, settings(thing_type), metrics, budget_secs=300)

    assert thing_names(iot) == fleet.foreign_things
    assert iot.list_principal_things(principal=fleet.certificate_arn)["things"] == ["customer-thing-same-type"]
    assert metric_total(metrics, "ThingsDeleted") == 25
    assert polls == 2  # the second poll finds nothing left and reports completion


def test_a_short_budget_spreads_the_work_over_several_polls(
    iot: Any, thing_type: str, fleet: Fleet, metrics: Metrics
) -> None:
    # Every clock reading costs a second: each poll has time for a few things only.
    ticking = FakeClock()

    def tick() -> float:
        ticking.now += 1
        return ticking.now

    event = load_event("cfn_delete")
    teardown_settings = settings(thing_type)
    first = logic.Teardown(iot, teardown_settings, clock=tick).run(budget_secs=10)
    remaining_after_first = len(thing_names(iot)) - len(fleet.foreign_things)
    polls = 1
    while not logic.is_complete(event, iot, teardown_settings, metrics, 10, clock=tick)["IsComplete"]:
        polls += 1

    assert first[0] is False
    assert 0 < remaining_after_first < 25
    assert polls > 2
    assert thing_names(iot) == fleet.foreign_things


@pytest.mark.parametrize("request_type", ["cfn_create", "cfn_update"])
def test_create_and_update_destroy_nothing(
    iot: Any, thing_type: str, fleet: Fleet, metrics: Metrics, request_type: str
) -> None:
    event = load_event(request_type)
    before = thing_names(iot)

    answer = logic.on_event(event, settings(thing_type), metrics)
    done = logic.is_complete(event | answer, iot, settings(thing_type), metrics, 300)

    assert done == {"IsComplete": True}
    assert answer["PhysicalResourceId"] == "aws-iot-bridge-things-lorawan-device"
    assert thing_names(iot) == before


def test_update_keeps_the_physical_id_so_cloudformation_never_replaces_the_resource(
    thing_type: str, metrics: Metrics
) -> None:
    event = load_event("cfn_update") | {"PhysicalResourceId": "id-from-an-earlier-deployment"}

    answer = logic.on_event(event, settings(thing_type), metrics)

    assert answer == {"PhysicalResourceId": "id-from-an-earlier-deployment"}


def test_a_deletion_refused_while_the_detachment_propagates_is_tried_again(
    iot: Any, thing_type: str, fleet: Fleet
) -> None:
    refused = InjectedErrors(
        "InvalidRequestException", "Cannot delete. Thing is still attached to one or more principals", times=3
    )
    iot.meta.events.register("before-call.iot.DeleteThing", refused)
    sleeps: list[float] = []
    teardown = logic.Teardown(iot, settings(thing_type, detach_propagation_secs=2.0), sleep=sleeps.append)

    done, progress = teardown.run(budget_secs=300)

    assert refused.injected == 3
    assert sleeps == [2.0]
    assert (done, progress.deleted, progress.failed) == (False, 25, {})


def test_a_thing_that_cannot_be_deleted_stops_the_teardown_with_its_reason(
    iot: Any, thing_type: str, fleet: Fleet, metrics: Metrics
) -> None:
    denied = InjectedErrors("UnauthorizedException", "explicit deny", times=1_000, thing_name=fleet.bridge_things[3])
    iot.meta.events.register("before-call.iot.DeleteThing", denied)
    event = load_event("cfn_delete")

    first = logic.is_complete(event, iot, settings(thing_type), metrics, 300)
    with pytest.raises(TeardownStuckError, match=fleet.bridge_things[3]) as stuck:
        logic.is_complete(event, iot, settings(thing_type), metrics, 300)

    assert first == {"IsComplete": False}
    assert "explicit deny" in str(stuck.value)
    assert thing_names(iot) == sorted([fleet.bridge_things[3], *fleet.foreign_things])


def test_an_event_that_is_not_a_custom_resource_request_is_refused(thing_type: str, metrics: Metrics) -> None:
    with pytest.raises(InvalidRequestError):
        logic.on_event({"RequestType": "Replace"}, settings(thing_type), metrics)


def test_the_gate_keeps_every_thread_within_the_rate() -> None:
    clock = FakeClock()
    lock = threading.Lock()

    def sleep(secs: float) -> None:
        with lock:
            clock.now += secs

    gate = RateGate(15, clock=clock, sleep=sleep)
    grants: list[float] = []

    def worker() -> None:
        for _ in range(25):
            granted = gate.wait()
            with lock:
                grants.append(granted)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(grants) == 200
    assert max_calls_in_any_second(grants) <= 15


def test_the_gate_passes_at_the_delete_quota_and_not_above() -> None:
    clock = FakeClock()
    gate = RateGate(DELETE_THING_PER_SEC, clock=clock, sleep=clock.sleep)

    grants = [gate.wait() for _ in range(61)]

    assert max_calls_in_any_second(grants) == DELETE_THING_PER_SEC
    assert grants[-1] - grants[0] == pytest.approx(60 / DELETE_THING_PER_SEC, abs=1e-6)


@pytest.fixture
def teardown_handler(load_handler: Callable[..., ModuleType], thing_type: str) -> ModuleType:
    return load_handler(HANDLER, THING_TYPE_NAME=thing_type)


def test_the_handlers_run_a_delete_to_completion_with_the_default_quotas(
    teardown_handler: ModuleType,
    iot: Any,
    thing_type: str,
    certificate_arn: str,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("70B3D57ED0000001", "70B3D57ED0000002"):
        iot.create_thing(
            thingName=name,
            thingTypeName=thing_type,
            attributePayload={"attributes": {CREATED_BY_ATTRIBUTE: CREATED_BY_VALUE}},
        )
        iot.attach_thing_principal(thingName=name, principal=certificate_arn)
    event = load_event("cfn_delete")

    answer = teardown_handler.on_event(event, lambda_context)
    first = teardown_handler.is_complete(event | answer, lambda_context)
    second = teardown_handler.is_complete(event | answer, lambda_context)

    assert answer == {"PhysicalResourceId": "aws-iot-bridge-things-lorawan-device"}
    assert (first, second) == ({"IsComplete": False}, {"IsComplete": True})
    assert thing_names(iot) == []
    assert emitted_metrics(capsys.readouterr().out)["ThingsDeleted"] == 2


def test_the_environment_model_reads_exactly_the_declared_variables() -> None:
    aliases = {field.alias for field in Environment.model_fields.values()}

    assert aliases == {member.value for member in EnvVar}
