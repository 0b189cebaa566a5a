"""One connection in this process: pool, registrar, downlinks and ingress, built together and run as one unit.

:class:`ConnectionRuntime` is an async context manager. Entering starts, in this order, the MQTT pool (clients
connect in the background), the registrar and the downlink service (which subscribes through the pool); leaving
stops them in reverse, from one :class:`contextlib.AsyncExitStack`. ThingPark's downlink reports reach the
downlink service through the ingress, wired here once, in the constructor, and so do ChirpStack's and TTS's reports
on downlinks.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType

from prometheus_client import CollectorRegistry

from bridge_container.console.capture import ControlLog
from bridge_container.downlink.service import DownlinkService, DownlinkSettings
from bridge_container.ingress.pipeline import UplinkIngress
from bridge_container.metrics import UplinkMetrics
from bridge_container.mqtt.port import ClientFactory
from bridge_container.registration import build_registrar
from bridge_container.states import ConnectionState, StateReport
from bridge_container.uplink.pool import MqttPool, PoolSettings, Uplink
from bridge_domain.connection import Connection, ConnectionConfiguration
from bridge_domain.quotas import CREATE_THING_PER_SEC

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Process-level choices every connection runtime shares."""

    registration_function: str | None = None
    registration_rate_per_sec: float = CREATE_THING_PER_SEC  # in-process registration only
    lift_rate_limits: bool = False  # benchmarks against a local broker only
    keep_downlink_sessions: bool = False  # the task comes back with its client IDs (BRIDGE_KEEP_DOWNLINK_SESSIONS)


class ConnectionRuntime:
    """One connection's parts; see the module docstring."""

    def __init__(
        self,
        connection_id: str,
        connection: Connection,
        clients: ClientFactory,
        metrics: UplinkMetrics,
        registry: CollectorRegistry,
        settings: RuntimeSettings | None = None,
    ) -> None:
        settings = settings or RuntimeSettings()
        config = connection.configuration
        self.connection_id = connection_id
        self.connection = connection
        self.pool = MqttPool(
            connection_id,
            PoolSettings.from_configuration(config, lift_rate_limits=settings.lift_rate_limits),
            clients,
            metrics,
        )
        self.registrar = build_registrar(
            connection_id,
            config,
            metrics,
            function_name=settings.registration_function,
            rate_per_sec=settings.registration_rate_per_sec,
        )
        # The console shows the feedback published (one per downlink: off the uplink path).
        self.feedback_log = ControlLog(self.pool)
        downlink_settings = DownlinkSettings(leave_unsent_on_stop=settings.keep_downlink_sessions)
        self.downlinks = DownlinkService(connection_id, config, self.feedback_log, registry, downlink_settings)
        # With downlinks off, ThingPark reports are counted as ignored, not silently taken.
        reports = self.downlinks.report if self.downlinks.enabled else None
        lifecycle = self.downlinks.lifecycle if self.downlinks.enabled else None
        self.ingress = UplinkIngress(
            connection_id, config, self.pool, metrics, self.registrar, reports, lifecycle=lifecycle
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._keep_buffer = False
        self._kept: list[Uplink] = []

    @property
    def configuration(self) -> ConnectionConfiguration:
        return self.connection.configuration

    @property
    def state(self) -> ConnectionState:
        return self.pool.state

    def report(self) -> StateReport:
        return self.pool.report()

    async def __aenter__(self) -> ConnectionRuntime:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(0.0)

    async def start(self) -> None:
        """Start the pool, the registrar and the downlinks; a part that fails to start stops those before it."""
        if self._stack is not None:
            return
        async with contextlib.AsyncExitStack() as stack:
            await self.pool.start()
            stack.push_async_callback(self._stop_pool)
            await self.registrar.start()
            stack.push_async_callback(self.registrar.stop)
            await stack.enter_async_context(self.downlinks)
            self._stack = stack.pop_all()

    async def stop(self, drain_deadline_secs: float, *, keep_buffer: bool = False) -> list[Uplink]:
        """Stop intake, drain (unless the buffer is kept for a successor), then stop every part.

        Returns the uplinks still buffered when ``keep_buffer`` (else they are counted as dropped).
        """
        self.ingress.draining = True
        if drain_deadline_secs > 0:
            left = await self.pool.drain(drain_deadline_secs)
            if left:
                logger.warning(
                    "connection %s: %d uplinks not drained within %ss", self.connection_id, left, drain_deadline_secs
                )
        self._keep_buffer = keep_buffer
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()  # downlinks (drained first), the registrar, then the pool
        kept, self._kept = self._kept, []
        return kept

    async def _stop_pool(self) -> None:
        self._kept = await self.pool.stop(keep_buffer=self._keep_buffer)
