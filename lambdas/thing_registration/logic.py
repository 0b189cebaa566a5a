"""Registers a batch of DevEUIs through the shared registration code and reports an outcome per DevEUI."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge_domain.registration import RegistrationOutcome, RegistrationSettings, register_things
from lambdas.thing_registration.environment import Environment
from lambdas.thing_registration.exceptions import InvalidRequestError

logger = Logger(child=True)

# 1,000 DevEUIs take about 67 s at 15 CreateThing/s: a batch must finish well within the function's timeout.
MAX_BATCH = 1000
_METRIC_BY_OUTCOME = {
    RegistrationOutcome.CREATED: "ThingsCreated",
    RegistrationOutcome.EXISTS: "ThingsAlreadyRegistered",
    RegistrationOutcome.FAILED: "ThingRegistrationFailures",
}


class RegistrationRequest(BaseModel):
    """``{"devEuis": ["70B3D57ED0000001", ...]}``; each DevEUI is checked on its own (a bad one fails alone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dev_euis: list[str] = Field(alias="devEuis", min_length=1, max_length=MAX_BATCH)


def settings_from(environment: Environment) -> RegistrationSettings:
    return RegistrationSettings(
        thing_type=environment.thing_type_name,
        principal_arn=environment.principal_arn,
        max_calls_per_sec=environment.create_thing_rate_per_sec,
    )


def register(event: Any, iot_client: Any, settings: RegistrationSettings, metrics: Metrics) -> dict[str, Any]:
    """Validate the event, register every DevEUI, count the outcomes and return them in input order."""
    try:
        request = RegistrationRequest.model_validate(event)
    except ValidationError as exc:
        metrics.add_metric(name="InvalidRegistrationRequests", unit=MetricUnit.Count, value=1)
        raise InvalidRequestError(f"expected {{'devEuis': [1..{MAX_BATCH} DevEUIs]}}: {exc}") from exc
    results = register_things(iot_client, request.dev_euis, settings)
    counts = Counter(result.outcome for result in results)
    for outcome, metric in _METRIC_BY_OUTCOME.items():
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=counts[outcome])
    failures = [result for result in results if result.outcome is RegistrationOutcome.FAILED]
    for failure in failures:
        logger.warning("registration failed", extra={"devEui": failure.dev_eui, "reason": failure.reason})
    logger.info(
        "registered batch",
        extra={
            "requested": len(results),
            "outcomes": {outcome.value: counts[outcome] for outcome in RegistrationOutcome},
        },
    )
    return {
        "results": [
            {"devEui": result.dev_eui, "outcome": result.outcome.value, "reason": result.reason} for result in results
        ]
    }
