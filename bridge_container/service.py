"""The bridge service: the HTTP server, the metrics registry and one :class:`ConnectionRuntime` per connection.

Lifecycle in one place (:meth:`BridgeService.run`): the HTTP server starts, then the Connections API (when the
service was given one), then the connection of the configuration file; on SIGTERM intake stops (ingress and
/healthz answer 503), every connection drains its buffer within ``BRIDGE_DRAIN_DEADLINE_SECS``, the runtimes stop,
and the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import boto3
import orjson
import uvicorn
from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CollectorRegistry

from bridge_container.connections.factory import ConnectionsApi
from bridge_container.connections.host import ConnectionHost
from bridge_container.console.routes import Console, mount_console
from bridge_container.console.session import SessionKeeper
from bridge_container.exceptions import UnknownConnectionError
from bridge_container.http_server import http_server
from bridge_container.ingress.http import FastIngress, ingress_router
from bridge_container.ingress.pipeline import IngressResult, error_result
from bridge_container.metrics import PROMETHEUS_CONTENT_TYPE, EmfEmitter, UplinkMetrics, new_registry, render
from bridge_container.mqtt.connects import ConnectPacer
from bridge_container.mqtt.crt import CrtClientFactory
from bridge_container.mqtt.port import ClientFactory
from bridge_container.runtime import ConnectionRuntime, RuntimeSettings
from bridge_container.settings import ServiceSettings
from bridge_container.states import ConnectionState, StateReport
from bridge_container.tasks import spawn, supervised
from bridge_domain.connection import Connection, ConnectionConfiguration
from bridge_domain.loading import resolve_secret_references
from bridge_domain.secrets import REVEAL_SECRETS, SecretFetcher, secrets_manager_fetcher

logger = logging.getLogger(__name__)

DEFAULT_CONNECTION_ID: Final = "default"
SERVER_START_TIMEOUT_SECS: Final = 10.0


ConnectionsApiBuilder = Callable[[ConnectionHost], ConnectionsApi]
"""Builds the Connections API over the service (``build_connections_api``, or a test's own store)."""


def _has_secret_references(connection: Connection) -> bool:
    found = False

    def visit(value: object) -> None:
        nonlocal found
        if isinstance(value, dict):
            if set(value) == {"secretsManager"}:
                found = True
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(connection.model_dump(mode="json", context={REVEAL_SECRETS: False}))
    return found


@dataclass
class BridgeService:
    """The running bridge; see the module docstring."""

    settings: ServiceSettings
    registry: CollectorRegistry = field(default_factory=new_registry)
    client_factory: Callable[[ConnectionConfiguration, str], ClientFactory] | None = None
    secret_fetcher: SecretFetcher | None = None
    connections_api: ConnectionsApiBuilder | None = None

    def __post_init__(self) -> None:
        self.metrics = UplinkMetrics(self.registry)
        self.draining = False
        self._runtimes: dict[str, ConnectionRuntime] = {}
        self._lock = asyncio.Lock()
        self._connects = ConnectPacer()  # one per process: a replaced connection reuses its client IDs
        self._shutdown = asyncio.Event()
        self.console: Console | None = None
        self.api = self.connections_api(self) if self.connections_api is not None else None
        self.fastapi = self._build_app()
        self.app = FastIngress(self, self.fastapi)

    # --- composition -----------------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="aws-iot-bridge",
            description="LoRaWAN network servers to AWS IoT Core: uplink ingress, Connections API, operations.",
            version="0.1.0",
        )
        app.state.service = self
        app.include_router(ingress_router(self))
        ops = APIRouter(tags=["operations"])

        @ops.get("/healthz", summary="Ready when at least one MQTT client is OPENED (503 while draining)")
        async def healthz() -> Response:
            status, body = self.health()
            return Response(orjson.dumps(body), status_code=status, media_type="application/json")

        @ops.get("/metrics", summary="Prometheus text exposition")
        async def metrics() -> Response:
            return Response(render(self.registry), media_type=PROMETHEUS_CONTENT_TYPE)

        app.include_router(ops)
        if self.api is not None:
            app.include_router(self.api.router)
            if self.api.auth is not None:
                self.console = Console(self.api.catalog, SessionKeeper(self.api.auth), self)
                mount_console(app, self.console)
        return app

    # --- connections (the Connections API calls these) -------------------------------------------------------
    def runtime(self, connection_id: str) -> ConnectionRuntime:
        try:
            return self._runtimes[connection_id]
        except KeyError:
            raise UnknownConnectionError(connection_id) from None

    def connection_state(self, connection_id: str) -> ConnectionState:
        runtime = self._runtimes.get(connection_id)
        return runtime.state if runtime is not None else ConnectionState.DEACTIVATED

    def connection_report(self, connection_id: str) -> StateReport:
        return self.runtime(connection_id).report()

    async def add_connection(self, connection_id: str, connection: Connection) -> None:
        """Start a connection (an existing one with the same id is replaced)."""
        if connection_id in self._runtimes:
            await self.replace_connection(connection_id, connection)
            return
        connection = await self._resolved(connection)
        async with self._lock:
            runtime = self._build_runtime(connection_id, connection)
            self._runtimes[connection_id] = runtime
            await runtime.start()
        for warning in connection.configuration.warnings():
            logger.warning("connection %s: %s", connection_id, warning)
        logger.info("connection %s started (%s)", connection_id, connection.name)

    async def replace_connection(self, connection_id: str, connection: Connection) -> None:
        """Restart with a new configuration; uplinks still buffered move to the new pool."""
        if connection_id not in self._runtimes:
            await self.add_connection(connection_id, connection)
            return
        connection = await self._resolved(connection)
        async with self._lock:
            old = self._runtimes[connection_id]
            new = self._build_runtime(connection_id, connection)
            self._runtimes[connection_id] = new  # new uplinks queue in the new pool while the old one stops
            # The old clients stop before the new ones connect: they share client IDs, and AWS IoT disconnects
            # the older of two clients with one ID.
            kept = await old.stop(0.0, keep_buffer=True)
            overflow = new.pool.adopt(kept)
            if overflow:
                logger.warning("connection %s: %d buffered uplinks did not fit the new buffer", connection_id, overflow)
            await new.start()
        logger.info(
            "connection %s restarted with a new configuration (%d uplinks carried over)", connection_id, len(kept)
        )

    async def remove_connection(self, connection_id: str) -> None:
        """Drain within the deadline, then stop and forget the connection."""
        async with self._lock:
            runtime = self._runtimes.get(connection_id)
            if runtime is None:
                return
            await runtime.stop(self.settings.drain_deadline_secs)
            del self._runtimes[connection_id]
            self.metrics.forget(connection_id)
        logger.info("connection %s removed", connection_id)

    def _build_runtime(self, connection_id: str, connection: Connection) -> ConnectionRuntime:
        config = connection.configuration
        build = self.client_factory or (
            lambda configuration, task_id: CrtClientFactory(
                configuration,
                task_id,
                connects=self._connects,
                end_sessions_on_stop=not self.settings.keep_downlink_sessions,
            )
        )
        settings = RuntimeSettings(
            registration_function=self.settings.registration_function,
            registration_rate_per_sec=self.settings.registration_rate_per_sec,
            lift_rate_limits=self.settings.lift_rate_limits,
            keep_downlink_sessions=self.settings.keep_downlink_sessions,
        )
        return ConnectionRuntime(
            connection_id, connection, build(config, self.settings.task_id), self.metrics, self.registry, settings
        )

    async def _resolved(self, connection: Connection) -> Connection:
        """The connection with its Secrets Manager references fetched (boto3 runs in a worker thread)."""
        if not _has_secret_references(connection):
            return connection
        fetch = self.secret_fetcher or secrets_manager_fetcher(boto3.client("secretsmanager"))
        return await asyncio.to_thread(resolve_secret_references, connection, fetch)

    # --- ingress and operations ------------------------------------------------------------------------------
    async def ingest(
        self, connection_id: str | None, lns: str, body: bytes, *, query: bytes, authorization: bytes | None
    ) -> IngressResult:
        if self.draining:
            return error_result(503, "stopping", "the bridge is shutting down; retry on another task", 1)
        runtime = self._runtimes.get(connection_id) if connection_id is not None else self._default_runtime()
        if runtime is None:
            wanted = connection_id or "the default connection"
            return error_result(404, "unknown_connection", f"no connection {wanted} runs here")
        return await runtime.ingress.handle(lns, body, query=query, authorization=authorization)

    def _default_runtime(self) -> ConnectionRuntime | None:
        runtimes = self._runtimes
        if DEFAULT_CONNECTION_ID in runtimes:
            return runtimes[DEFAULT_CONNECTION_ID]
        if len(runtimes) == 1:
            return next(iter(runtimes.values()))
        return None

    def health(self) -> tuple[int, dict[str, object]]:
        """200 when at least one client is OPENED (or no connection is configured yet), else 503.

        Each connection shows its state, why it is not OPENED, and each client's state and last error; ``unhealthy``
        lists the connections with no OPENED client, with their reason.
        """
        connections: dict[str, object] = {}
        unhealthy: list[dict[str, object]] = []
        for connection_id, runtime in self._runtimes.items():
            report = runtime.report()
            connections[connection_id] = {
                "state": report.state.value,
                "reason": report.reason,
                "clients": {
                    client.client_id: {"state": client.state.value, "reason": client.reason}
                    for client in report.clients
                },
                "buffered": runtime.pool.depth,
            }
            if report.state is not ConnectionState.OPENED:
                unhealthy.append({"connection": connection_id, "state": report.state.value, "reason": report.reason})
        opened = any(runtime.pool.opened_clients for runtime in self._runtimes.values())
        if self.draining:
            status = "draining"
        elif opened or not self._runtimes:
            status = "ready"
        else:
            status = "not_ready"
        body: dict[str, object] = {
            "status": status,
            "task": self.settings.task_id,
            "connections": connections,
            "unhealthy": unhealthy,
        }
        return (200 if status == "ready" else 503), body

    # --- lifecycle -------------------------------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """SIGTERM/SIGINT: begin the graceful stop (idempotent)."""
        if not self._shutdown.is_set():
            logger.info("shutdown requested: draining")
        self._shutdown.set()

    async def run(self, initial: Connection | None = None) -> None:
        """Serve until :meth:`request_shutdown`, then drain and stop everything."""
        server = http_server(self.app, host=self.settings.host, port=self.settings.port)
        try:
            async with supervised() as tasks:
                server_task = tasks.create_task(_serve(server), name="http-server")
                flush_task: asyncio.Task[None] | None = None
                try:
                    await self._wait_started(server, server_task)
                    logger.info(
                        "HTTP on %s:%s (task %s)", self.settings.host, self.settings.port, self.settings.task_id
                    )
                    if self.console is not None:
                        self.console.open()
                    if self.api is not None:
                        await self.api.start()
                    if initial is not None:
                        await self.add_connection(DEFAULT_CONNECTION_ID, initial)
                    if self.settings.emf_interval_secs > 0:
                        emitter = EmfEmitter(self.registry)
                        flush_task = spawn(emitter.run(self.settings.emf_interval_secs), "metric-flush")
                    await self._shutdown.wait()
                finally:
                    # Also when a background task crashed (the group cancelled this block): drain what can be.
                    await self._stop_everything(flush_task)
                    server.should_exit = True
        except BaseExceptionGroup as group:
            raise _first_failure(group) from None  # logged once, by the caller that ends the process

    async def _wait_started(self, server: uvicorn.Server, server_task: asyncio.Task[None]) -> None:
        deadline = asyncio.get_running_loop().time() + SERVER_START_TIMEOUT_SECS
        while not server.started:
            if server_task.done():
                server_task.result()  # bind errors surface here
                raise RuntimeError("the HTTP server stopped while starting")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the HTTP server did not start")
            await asyncio.sleep(0.02)

    async def _stop_everything(self, flush_task: asyncio.Task[None] | None) -> None:
        self.draining = True
        if self.console is not None:
            self.console.close()
        if self.api is not None:
            try:
                await self.api.close()
            except Exception:
                logger.exception("stopping the Connections API failed")
        async with self._lock:
            runtimes = list(self._runtimes.items())
            await asyncio.gather(
                *(runtime.stop(self.settings.drain_deadline_secs) for _, runtime in runtimes), return_exceptions=True
            )
            self._runtimes.clear()
        if flush_task is not None:
            flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flush_task
        logger.info("stopped: %d connection(s) drained", len(runtimes))


def _first_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group (its note names the background task it came from)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


async def _serve(server: uvicorn.Server) -> None:
    """uvicorn's serve; cancelled (another background task crashed), it still closes its listening sockets."""
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(server.shutdown()), SERVER_START_TIMEOUT_SECS)
        raise
