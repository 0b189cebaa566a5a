"""Thing registration from the uplink path: the first uplink of an unknown DevEUI asks a registrar to create its thing.

Publishing never waits for it: :meth:`Registrar.observe` is a dictionary lookup on the hot path; unknown DevEUIs
are queued and registered in batches by a background task, in-process (boto3 in a worker thread, through
:func:`bridge_domain.registration.register_things`) or by invoking the registration Lambda. Known DevEUIs (a
bounded LRU cache) cost no API call; a failed registration is retried on a later uplink after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, Protocol

import boto3
import orjson
from botocore.config import Config

from bridge_container.exceptions import RegistrationError
from bridge_container.metrics import UplinkMetrics
from bridge_container.tasks import spawn
from bridge_domain.connection import CERTIFICATE_ARN_RE, ConnectionConfiguration
from bridge_domain.quotas import CREATE_THING_PER_SEC
from bridge_domain.registration import (
    CLIENT_RETRIES,
    RegistrationOutcome,
    RegistrationResult,
    RegistrationSettings,
    register_things,
)
from bridge_domain.secrets import reveal

logger = logging.getLogger(__name__)

LAMBDA_TIMEOUT_SECS: Final = 900


class Registrar(Protocol):
    """Told about every accepted uplink's DevEUI; registers the unknown ones without blocking the caller."""

    def observe(self, dev_eui: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class RegistrationBackend(Protocol):
    """Registers a batch of DevEUIs; one result per DevEUI. Raises :class:`RegistrationError` when the call fails."""

    async def register(self, dev_euis: Sequence[str]) -> list[RegistrationResult]: ...


@dataclass(frozen=True, slots=True)
class RegistrarSettings:
    """Cache and batching bounds of a :class:`BatchingRegistrar`."""

    known_cache_size: int = 100_000
    max_pending: int = 10_000
    max_batch: int = 100
    retry_after_failure_secs: float = 300.0


class NullRegistrar:
    """For connections with ``registerThings: false``."""

    def observe(self, dev_eui: str) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class BatchingRegistrar:
    """Keeps the known DevEUIs, queues the unknown ones and registers them in batches in the background."""

    def __init__(
        self,
        connection_id: str,
        backend: RegistrationBackend,
        metrics: UplinkMetrics,
        settings: RegistrarSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection_id = connection_id
        self.settings = settings or RegistrarSettings()
        self._backend = backend
        self._clock = clock
        self._known: OrderedDict[str, None] = OrderedDict()
        self._pending: deque[str] = deque()
        self._queued: set[str] = set()
        self._failed_until: OrderedDict[str, float] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outcomes = {
            outcome: metrics.registrations.labels(connection_id, outcome.value) for outcome in RegistrationOutcome
        }
        self._skipped = metrics.registrations.labels(connection_id, "skipped_queue_full")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe(self, dev_eui: str) -> None:
        known = self._known
        if dev_eui in known:
            known.move_to_end(dev_eui)
            return
        if dev_eui in self._queued:
            return
        retry_at = self._failed_until.get(dev_eui)
        if retry_at is not None:
            if self._clock() < retry_at:
                return
            del self._failed_until[dev_eui]
        if len(self._pending) >= self.settings.max_pending:
            self._skipped.inc()  # asked again on this DevEUI's next uplink
            return
        self._pending.append(dev_eui)
        self._queued.add(dev_eui)
        self._wakeup.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), f"registrar-{self.connection_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = [self._pending.popleft() for _ in range(min(self.settings.max_batch, len(self._pending)))]
            await self._register(batch)

    async def _register(self, batch: list[str]) -> None:
        try:
            results = await self._backend.register(batch)
        except RegistrationError as exc:
            logger.warning(
                "connection %s: registering %d things failed (%s); retrying on later uplinks",
                self.connection_id,
                len(batch),
                exc,
            )
            results = [RegistrationResult(dev_eui, RegistrationOutcome.FAILED, str(exc)) for dev_eui in batch]
        by_dev_eui = {result.dev_eui.upper(): result for result in results}
        for dev_eui in batch:
            self._queued.discard(dev_eui)
            result = by_dev_eui.get(dev_eui) or RegistrationResult(dev_eui, RegistrationOutcome.FAILED, "no result")
            self._outcomes[result.outcome].inc()
            if result.outcome is RegistrationOutcome.FAILED:
                self._remember_failure(dev_eui)
                logger.warning("connection %s: thing %s not registered: %s", self.connection_id, dev_eui, result.reason)
            else:
                self._remember_known(dev_eui)
                if result.outcome is RegistrationOutcome.CREATED:
                    logger.info("connection %s: thing %s registered", self.connection_id, dev_eui)

    def _remember_known(self, dev_eui: str) -> None:
        self._known[dev_eui] = None
        while len(self._known) > self.settings.known_cache_size:
            self._known.popitem(last=False)

    def _remember_failure(self, dev_eui: str) -> None:
        self._failed_until[dev_eui] = self._clock() + self.settings.retry_after_failure_secs
        while len(self._failed_until) > self.settings.max_pending:
            self._failed_until.popitem(last=False)


def registration_settings(
    config: ConnectionConfiguration, rate_per_sec: float = CREATE_THING_PER_SEC
) -> RegistrationSettings:
    """Thing type from deviceType; the bridge certificate is attached when certificateId is an ARN."""
    certificate_id = config.certificate_id or ""
    principal = certificate_id if CERTIFICATE_ARN_RE.match(certificate_id) else None
    return RegistrationSettings(thing_type=config.device_type, principal_arn=principal, max_calls_per_sec=rate_per_sec)


class InProcessBackend:
    """Calls register_things with a boto3 IoT client in a worker thread (the calls are synchronous and paced)."""

    def __init__(
        self, config: ConnectionConfiguration, *, client: Any = None, rate_per_sec: float = CREATE_THING_PER_SEC
    ) -> None:
        self._config = config
        self._settings = registration_settings(config, rate_per_sec)
        self._given_client = client

    @cached_property
    def _client(self) -> Any:
        if self._given_client is not None:
            return self._given_client
        config = self._config
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=reveal(config.secret_access_key),
            region_name=config.region,
        )
        # botocore's own retries would bypass register_things' rate limits.
        return session.client("iot", config=Config(retries=dict(CLIENT_RETRIES)))

    async def register(self, dev_euis: Sequence[str]) -> list[RegistrationResult]:
        try:
            return await asyncio.to_thread(register_things, self._client, list(dev_euis), self._settings)
        except Exception as exc:  # an unexpected failure of the whole call; each DevEUI is retried later
            raise RegistrationError(f"{type(exc).__name__}: {exc}") from exc


class LambdaBackend:
    """Invokes the registration Lambda with ``{"devEuis": [...]}`` (``BRIDGE_REGISTRATION_FUNCTION``)."""

    def __init__(self, function_name: str, *, client: Any = None) -> None:
        self.function_name = function_name
        self._given_client = client

    @cached_property
    def _client(self) -> Any:
        if self._given_client is not None:
            return self._given_client
        return boto3.client("lambda", config=Config(read_timeout=LAMBDA_TIMEOUT_SECS, retries={"max_attempts": 2}))

    def _invoke(self, dev_euis: list[str]) -> list[RegistrationResult]:
        response = self._client.invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            Payload=orjson.dumps({"devEuis": dev_euis}),
        )
        body = orjson.loads(response["Payload"].read())
        if response.get("FunctionError"):
            message = body.get("errorMessage", "unknown") if isinstance(body, dict) else "unknown"
            raise RegistrationError(f"{self.function_name} failed: {message}")
        return [
            RegistrationResult(item["devEui"], RegistrationOutcome(item["outcome"]), item.get("reason"))
            for item in body["results"]
        ]

    async def register(self, dev_euis: Sequence[str]) -> list[RegistrationResult]:
        try:
            return await asyncio.to_thread(self._invoke, list(dev_euis))
        except RegistrationError:
            raise
        except Exception as exc:
            raise RegistrationError(f"invoking {self.function_name}: {type(exc).__name__}: {exc}") from exc


def build_registrar(
    connection_id: str,
    config: ConnectionConfiguration,
    metrics: UplinkMetrics,
    *,
    function_name: str | None,
    rate_per_sec: float = CREATE_THING_PER_SEC,
) -> Registrar:
    """The registrar of a connection: none, the Lambda when ``function_name`` is set, else in-process boto3.

    The Lambda (reserved concurrency 1) paces CreateThing for every task together; in-process registration paces
    only its own task, at ``rate_per_sec`` (15/s divided by the number of tasks when several run).
    """
    if not config.register_things:
        return NullRegistrar()
    backend: RegistrationBackend = (
        LambdaBackend(function_name) if function_name else InProcessBackend(config, rate_per_sec=rate_per_sec)
    )
    return BatchingRegistrar(connection_id, backend, metrics)
