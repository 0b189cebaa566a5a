"""Thing registration shared by the registration Lambda and the bridge's in-process registrar.

For each DevEUI: DescribeThing (350/s quota) first, so a DevEUI whose thing already exists costs no call against
CreateThing's 15/s quota; CreateThing (name = DevEUI, the thing type, attributes ``devEUI`` and
``createdBy=aws-iot-bridge``) when it is missing; then AttachThingPrincipal with the bridge certificate.

Outcomes per DevEUI:

* ``created``: the thing was created (and the principal attached, when one is configured);
* ``exists``: a thing of the same type was already there (the principal is attached again only to things the
  bridge created, which repairs a registration interrupted between its two calls, and never ties the bridge
  certificate to a thing that teardown will leave behind);
* ``failed``: with a reason: invalid DevEUI, a thing of another type holds the name, retries exhausted, ...

Throttling and transient server errors are retried with capped, jittered exponential backoff. Every call, retries
included, takes a grant from a per-operation :class:`~bridge_domain.ratelimit.WindowedRate` first, so CreateThing
and AttachThingPrincipal each stay at ``max_calls_per_sec``. The client passed in must have botocore's own retries
off (``CLIENT_RETRIES``): botocore retrying a throttled CreateThing by itself would bypass the limit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from bridge_domain.exceptions import BridgeDomainError, InvalidDevEuiError
from bridge_domain.naming import CREATED_BY_ATTRIBUTE, CREATED_BY_VALUE, DEV_EUI_ATTRIBUTE, thing_name
from bridge_domain.quotas import CREATE_THING_PER_SEC
from bridge_domain.ratelimit import WindowedRate

logger = logging.getLogger(__name__)

# Pass as ``botocore.config.Config(retries=CLIENT_RETRIES)`` for the IoT client given to register_things.
CLIENT_RETRIES: Final[Mapping[str, int]] = {"total_max_attempts": 1}
# DescribeThing's account quota is 350/s; a third of it leaves room for the console and other tools.
DESCRIBE_CALLS_PER_SEC: Final = 100.0
BACKOFF_BASE_SECS: Final = 0.5
BACKOFF_CAP_SECS: Final = 8.0
_RETRYABLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "ServiceUnavailableException", "InternalFailureException"}
)


class RegistrationOutcome(StrEnum):
    """What happened to one DevEUI."""

    CREATED = "created"
    EXISTS = "exists"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    """The outcome for one DevEUI, with a reason when it failed."""

    dev_eui: str
    outcome: RegistrationOutcome
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """Thing type, certificate to attach, call rate for CreateThing/AttachThingPrincipal, attempts per call."""

    thing_type: str
    principal_arn: str | None = None
    max_calls_per_sec: float = CREATE_THING_PER_SEC
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if not self.thing_type:
            raise ValueError("thing_type must not be empty")
        if self.max_calls_per_sec <= 0:
            raise ValueError("max_calls_per_sec must be > 0")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


class _CallFailedError(BridgeDomainError):
    """An API call failed for good: a non-retryable error, or retries exhausted."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


def _error_code(exc: ClientError) -> tuple[str, str]:
    error = exc.response.get("Error") or {}
    return str(error.get("Code", "Unknown")), str(error.get("Message", ""))


@dataclass(slots=True)
class _Registrar:
    """One registration run: the client, one rate limit per rate-limited operation, clock and sleep."""

    client: Any
    settings: RegistrationSettings
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    limits: dict[str, WindowedRate] = field(init=False)

    def __post_init__(self) -> None:
        # A burst of 1 spaces the calls 1/rate apart; the window keeps every rolling second at the rate.
        rate = self.settings.max_calls_per_sec
        self.limits = {
            "create_thing": WindowedRate.per_sec(rate),
            "attach_thing_principal": WindowedRate.per_sec(rate),
            "describe_thing": WindowedRate.per_sec(DESCRIBE_CALLS_PER_SEC),
        }

    def _acquire(self, operation: str) -> None:
        limit = self.limits[operation]
        while (wait_secs := limit.try_take(self.clock())) > 0:
            self.sleep(wait_secs)

    def _backoff_secs(self, attempt: int) -> float:
        # Equal jitter: half the capped exponential delay is fixed, half random, so retries spread out.
        delay = min(BACKOFF_CAP_SECS, BACKOFF_BASE_SECS * 2.0 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not cryptography

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` within its rate, retrying throttling and transient errors with backoff."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            self._acquire(operation)
            try:
                response: dict[str, Any] = getattr(self.client, operation)(**params)
            except (ClientError, HTTPClientError, BotocoreConnectionError) as exc:
                # Connection failures and timeouts are transient: retried like throttling. Other botocore errors
                # (no credentials, invalid parameters) would fail every DevEUI alike: they escape.
                code, message = _error_code(exc) if isinstance(exc, ClientError) else (type(exc).__name__, str(exc))
                if isinstance(exc, ClientError) and code not in _RETRYABLE_CODES:
                    raise _CallFailedError(code, message) from exc
                if attempt == attempts:
                    raise _CallFailedError(code, f"{message} (gave up after {attempts} attempts)") from exc
                delay_secs = self._backoff_secs(attempt)
                logger.debug("%s %s; retrying in %.2f s (attempt %d)", operation, code, delay_secs, attempt)
                self.sleep(delay_secs)
            else:
                return response
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def describe(self, name: str) -> dict[str, Any] | None:
        """The thing's description, or ``None`` when no thing has that name."""
        try:
            return self.call("describe_thing", thingName=name)
        except _CallFailedError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise

    def register(self, name: str) -> RegistrationResult:
        """Register one thing (``name`` is the normalised DevEUI)."""
        existing = self.describe(name)
        if existing is None:
            try:
                self.call(
                    "create_thing",
                    thingName=name,
                    thingTypeName=self.settings.thing_type,
                    attributePayload={"attributes": {DEV_EUI_ATTRIBUTE: name, CREATED_BY_ATTRIBUTE: CREATED_BY_VALUE}},
                )
            except _CallFailedError as exc:
                if exc.code != "ResourceAlreadyExistsException":
                    raise
                # Someone else created it between our two calls, with another configuration: judge what is there.
                existing = self.describe(name)
                if existing is None:
                    raise
            else:
                self.attach(name)
                return RegistrationResult(name, RegistrationOutcome.CREATED)
        return self.judge_existing(name, existing)

    def judge_existing(self, name: str, existing: Mapping[str, Any]) -> RegistrationResult:
        found_type = existing.get("thingTypeName")
        if found_type != self.settings.thing_type:
            reason = (
                f"thing {name} already exists with thing type {found_type or '(none)'}, not {self.settings.thing_type}"
            )
            return RegistrationResult(name, RegistrationOutcome.FAILED, reason)
        attributes = existing.get("attributes") or {}
        if attributes.get(CREATED_BY_ATTRIBUTE) == CREATED_BY_VALUE:
            self.attach(name)
        return RegistrationResult(name, RegistrationOutcome.EXISTS)

    def attach(self, name: str) -> None:
        # AttachThingPrincipal is idempotent: attaching an attached principal succeeds and changes nothing.
        if self.settings.principal_arn is None:
            return
        try:
            self.call("attach_thing_principal", thingName=name, principal=self.settings.principal_arn)
        except _CallFailedError as exc:
            # The thing stays; registering the DevEUI again attaches the certificate (the "exists" path).
            reason = f"thing {name} is registered but attaching the certificate failed: {exc.message}"
            raise _CallFailedError(exc.code, reason) from exc


def register_things(
    iot_client: Any,
    dev_euis: Sequence[str],
    settings: RegistrationSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[RegistrationResult]:
    """Register a thing per DevEUI; one result per input, in input order (a repeated DevEUI is done once).

    Synchronous and single-threaded: the calls are spaced by the rate limits, and the rate is what bounds the
    throughput anyway. AWS errors are per DevEUI; botocore errors that would fail every DevEUI alike (no
    credentials, invalid parameters) and unexpected exceptions escape.
    """
    registrar = _Registrar(client=iot_client, settings=settings, clock=clock, sleep=sleep)
    done: dict[str, RegistrationResult] = {}
    results: list[RegistrationResult] = []
    for raw in dev_euis:
        try:
            name = thing_name(raw)
        except InvalidDevEuiError as exc:
            results.append(RegistrationResult(str(raw), RegistrationOutcome.FAILED, str(exc)))
            continue
        if name not in done:
            try:
                done[name] = registrar.register(name)
            except _CallFailedError as exc:
                done[name] = RegistrationResult(name, RegistrationOutcome.FAILED, str(exc))
        results.append(done[name])
    return results
