"""Teardown of the bridge's things, driven by the CDK custom-resource Provider (onEvent + isComplete polling).

``on_event`` never deletes anything: Create and Update only answer with a stable physical id (an unchanged id
means CloudFormation never replaces the resource, so no Delete is triggered by an update). On Delete it returns
at once and the work happens in ``is_complete``, polled by the Provider until it reports completion.

Each ``is_complete`` call lists the things with attribute ``createdBy=aws-iot-bridge`` and the stack's thing
type (ListThings, paginated), and for each one, in parallel: lists its principals, detaches them and deletes the
thing. Every operation passes its own :class:`RateGate`, so the calls stay within AWS IoT's quotas whatever the
parallelism. It stops taking new things shortly before the invocation would time out; the next poll lists
again, so a thing is never forgotten, and completion is reported only when a listing comes back empty.

Throughput is bounded by the slowest gate (ListThingPrincipals, 10/s): 10,000 things take about 17 minutes, so
the Provider's total timeout needs 30 minutes or more, and under CloudFormation's one-hour limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from bridge_domain.naming import CREATED_BY_ATTRIBUTE, CREATED_BY_VALUE
from bridge_domain.quotas import DELETE_THING_PER_SEC, DETACH_THING_PRINCIPAL_PER_SEC
from lambdas.teardown.exceptions import InvalidRequestError, TeardownStuckError
from lambdas.teardown.throttle import RateGate

logger = Logger(child=True)

PHYSICAL_ID_PREFIX = "aws-iot-bridge-things-"
_MAX_FAILURES_SHOWN = 5


class CustomResourceEvent(BaseModel):
    """The fields of a CloudFormation custom-resource request (as the Provider framework passes it) used here."""

    model_config = ConfigDict(frozen=True, extra="allow")

    RequestType: Literal["Create", "Update", "Delete"]
    PhysicalResourceId: str | None = None


@dataclass(frozen=True, slots=True)
class TeardownRates:
    """Calls per second per operation, each at or under its AWS IoT account quota."""

    list_things_per_sec: float = 10.0
    # No published figure; the other list operations allow 10/s, so 10/s is assumed.
    list_principals_per_sec: float = 10.0
    detach_per_sec: float = DETACH_THING_PRINCIPAL_PER_SEC
    delete_per_sec: float = DELETE_THING_PER_SEC


@dataclass(frozen=True, slots=True)
class TeardownSettings:
    """What to remove and how: thing type, rates, parallelism, page size and the time kept in reserve."""

    thing_type: str
    rates: TeardownRates = field(default_factory=TeardownRates)
    workers: int = 8
    page_size: int = 250
    # New things are not started within this margin of the invocation's timeout, so in-flight calls finish.
    safety_margin_secs: float = 30.0
    # DetachThingPrincipal takes effect asynchronously; a delete refused meanwhile is tried again after this.
    detach_propagation_secs: float = 2.0


class ThingOutcome(StrEnum):
    DELETED = "deleted"
    GONE = "gone"  # someone else removed it meanwhile
    DEFERRED = "deferred"  # principals detached, the deletion still refused: try again
    SKIPPED = "skipped"  # not started: out of time
    FAILED = "failed"


@dataclass(slots=True)
class Progress:
    """Counts of one ``is_complete`` call, logged after every page."""

    deleted: int = 0
    deferred: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    pages: int = 0
    # True when the pass went through the whole listing rather than stopping for time.
    reached_end: bool = False

    def as_log(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "deferred": self.deferred, "failed": len(self.failed), "pages": self.pages}


def parse_request(event: Any) -> CustomResourceEvent:
    try:
        return parse(event=event, model=CustomResourceEvent)
    except ValidationError as exc:
        raise InvalidRequestError(f"not a custom-resource request: {exc}") from exc


def on_event(event: Any, settings: TeardownSettings, metrics: Metrics) -> dict[str, Any]:
    """Create/Update: answer with the physical id, destroy nothing. Delete: answer at once; is_complete works."""
    request = parse_request(event)
    metrics.add_metric(name=f"CustomResource{request.RequestType}Requests", unit=MetricUnit.Count, value=1)
    physical_id = request.PhysicalResourceId or f"{PHYSICAL_ID_PREFIX}{settings.thing_type}"
    if request.RequestType == "Delete":
        logger.info("deleting the things the bridge registered", extra={"thingType": settings.thing_type})
    else:
        logger.info("nothing to do", extra={"requestType": request.RequestType, "physicalResourceId": physical_id})
    return {"PhysicalResourceId": physical_id}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Teardown:
    """One ``is_complete`` call's worth of work against the IoT client."""

    def __init__(
        self,
        iot_client: Any,
        settings: TeardownSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = iot_client
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        rates = settings.rates
        self._list_things = RateGate(rates.list_things_per_sec)
        self._list_principals = RateGate(rates.list_principals_per_sec)
        self._detach = RateGate(rates.detach_per_sec)
        self._delete = RateGate(rates.delete_per_sec)
        self._deadline = float("inf")
        self._listing_cut = False

    def _pages(self) -> Iterator[list[str]]:
        token: str | None = None
        while True:
            self._list_things.wait()
            params: dict[str, Any] = {
                "attributeName": CREATED_BY_ATTRIBUTE,
                "attributeValue": CREATED_BY_VALUE,
                "thingTypeName": self._settings.thing_type,
                "maxResults": self._settings.page_size,
            }
            if token is not None:
                params["nextToken"] = token
            try:
                page = self._client.list_things(**params)
            except ClientError as exc:
                if token is None or _code(exc) != "InvalidRequestException":
                    raise
                # The listing changed under its token: end the pass, the next poll lists from the start.
                logger.warning("listing token no longer valid; listing again on the next poll")
                self._listing_cut = True
                return
            yield [thing["thingName"] for thing in page.get("things", [])]
            token = page.get("nextToken")
            if not token:
                return

    def _principals(self, name: str) -> list[str]:
        principals: list[str] = []
        token: str | None = None
        while True:
            self._list_principals.wait()
            params: dict[str, Any] = {"thingName": name} | ({"nextToken": token} if token else {})
            page = self._client.list_thing_principals(**params)
            principals.extend(page.get("principals", []))
            token = page.get("nextToken")
            if not token:
                return principals

    def _delete_thing(self, name: str) -> tuple[ThingOutcome, str | None]:
        self._delete.wait()
        try:
            self._client.delete_thing(thingName=name)
        except ClientError as exc:
            code = _code(exc)
            if code == "ResourceNotFoundException":
                return ThingOutcome.GONE, None
            if code == "InvalidRequestException" and "attached" in str(exc).lower():
                return ThingOutcome.DEFERRED, str(exc)
            return ThingOutcome.FAILED, str(exc)
        return ThingOutcome.DELETED, None

    def _remove(self, name: str) -> tuple[ThingOutcome, str | None]:
        if self._clock() >= self._deadline:
            return ThingOutcome.SKIPPED, None
        try:
            for principal in self._principals(name):
                self._detach.wait()
                try:
                    self._client.detach_thing_principal(thingName=name, principal=principal)
                except ClientError as exc:
                    if _code(exc) != "ResourceNotFoundException":
                        raise
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return ThingOutcome.GONE, None
            return ThingOutcome.FAILED, str(exc)
        return self._delete_thing(name)

    def _tally(self, progress: Progress, outcomes: Iterator[tuple[str, tuple[ThingOutcome, str | None]]]) -> list[str]:
        deferred: list[str] = []
        for name, (outcome, reason) in outcomes:
            if outcome is ThingOutcome.DELETED:
                progress.deleted += 1
            elif outcome is ThingOutcome.DEFERRED:
                deferred.append(name)
            elif outcome is ThingOutcome.FAILED:
                progress.failed[name] = reason or "unknown error"
        return deferred

    def run(self, budget_secs: float) -> tuple[bool, Progress]:
        """Work for at most ``budget_secs`` (less the margin); True when no bridge thing was left to find."""
        started = self._clock()
        self._deadline = started + budget_secs - self._settings.safety_margin_secs
        progress = Progress()
        with ThreadPoolExecutor(max_workers=self._settings.workers, thread_name_prefix="teardown") as pool:
            for names in self._pages():
                if progress.pages == 0 and not names:
                    return True, progress
                progress.pages += 1
                deferred = self._tally(progress, zip(names, pool.map(self._remove, names), strict=True))
                if deferred:
                    self._sleep(self._settings.detach_propagation_secs)
                    still = self._tally(progress, zip(deferred, pool.map(self._delete_thing, deferred), strict=True))
                    progress.deferred += len(still)
                logger.info(
                    "teardown progress",
                    extra=progress.as_log() | {"elapsedSecs": round(self._clock() - started, 1)},
                )
                if self._clock() >= self._deadline:
                    break
            else:
                progress.reached_end = not self._listing_cut
        return False, progress


def is_complete(
    event: Any,
    iot_client: Any,
    settings: TeardownSettings,
    metrics: Metrics,
    remaining_secs: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Provider isComplete: Create/Update are complete at once; Delete removes things until none is left."""
    request = parse_request(event)
    if request.RequestType != "Delete":
        return {"IsComplete": True}
    done, progress = Teardown(iot_client, settings, clock=clock, sleep=sleep).run(remaining_secs)
    metrics.add_metric(name="ThingsDeleted", unit=MetricUnit.Count, value=progress.deleted)
    metrics.add_metric(name="ThingDeletionFailures", unit=MetricUnit.Count, value=len(progress.failed))
    if done:
        logger.info("teardown complete: no bridge thing left", extra={"thingType": settings.thing_type})
        return {"IsComplete": True}
    if progress.reached_end and progress.failed and progress.deleted == 0 and progress.deferred == 0:
        shown = "; ".join(f"{name}: {reason}" for name, reason in list(progress.failed.items())[:_MAX_FAILURES_SHOWN])
        raise TeardownStuckError(f"{len(progress.failed)} thing(s) cannot be deleted: {shown}")
    return {"IsComplete": False}
