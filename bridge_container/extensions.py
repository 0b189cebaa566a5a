"""The other parts of the bridge plugged into the service: the Connections API and each connection's downlinks."""

from __future__ import annotations

from bridge_container.connections.factory import build_connections_api
from bridge_container.downlink.service import DownlinkService
from bridge_container.service import BridgeService, ConnectionRuntime


def install_connections_api(service: BridgeService) -> None:
    """``/connections`` CRUD (admin token), started after the HTTP server and stopped before the connections."""
    api = build_connections_api(service)
    service.include_router(api.router)
    service.add_lifecycle(api.start, api.close)


def install_downlinks(service: BridgeService) -> None:
    """A :class:`DownlinkService` per connection, entered once its pool runs and left before the pool stops."""

    def attach(runtime: ConnectionRuntime) -> None:
        downlinks = DownlinkService(runtime.connection_id, runtime.configuration, runtime.pool, service.registry)

        async def start(started: ConnectionRuntime) -> None:
            await downlinks.__aenter__()
            if downlinks.enabled:  # otherwise ThingPark reports are counted as ignored, not silently taken
                started.downlink_reports = downlinks.report

        async def stop(stopping: ConnectionRuntime) -> None:
            stopping.downlink_reports = None
            await downlinks.__aexit__(None, None, None)

        runtime.on_start.append(start)
        runtime.on_stop.append(stop)

    service.runtime_extensions.append(attach)
