"""``python -m bridge_container [--config FILE] [--host H] [--port P]``: run the bridge until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from collections.abc import Sequence

import httpx
import uvloop

from bridge_container.connections.factory import build_connections_api
from bridge_container.exceptions import SettingsError
from bridge_container.logs import configure_logging
from bridge_container.service import BridgeService
from bridge_container.settings import (
    DEFAULT_HTTP_HOST,
    DEFAULT_HTTP_PORT,
    ConnectionsSettings,
    ContainerSettings,
    EnvVar,
    ServiceSettings,
)
from bridge_domain.connection import Connection
from bridge_domain.exceptions import ConfigError
from bridge_domain.loading import load_connection_file

logger = logging.getLogger("bridge_container")

ECS_METADATA_TIMEOUT_SECS = 2.0
GIL_SWITCH_INTERVAL_SECS = 0.001


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge_container", description=__doc__)
    parser.add_argument("--config", help=f"connection file started as connection 'default' (env {EnvVar.CONFIG_FILE})")
    parser.add_argument("--host", help=f"HTTP listen address (env {EnvVar.HTTP_HOST}, default {DEFAULT_HTTP_HOST})")
    parser.add_argument("--port", type=int, help=f"HTTP port (env {EnvVar.HTTP_PORT}, default {DEFAULT_HTTP_PORT})")
    return parser.parse_args(argv)


def with_ecs_task_id(settings: ServiceSettings) -> ServiceSettings:
    """BRIDGE_TASK_ID when set, else the ECS task id from the task metadata endpoint, else the host name."""
    if "task_id" in settings.model_fields_set or settings.ecs_metadata_uri is None:
        return settings
    try:
        response = httpx.get(f"{settings.ecs_metadata_uri}/task", timeout=ECS_METADATA_TIMEOUT_SECS)
        task_arn = response.json()["TaskARN"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        logger.warning("ECS task metadata unavailable (%s); using the host name as task id", exc)
        return settings
    return settings.model_copy(update={"task_id": str(task_arn).rsplit("/", 1)[-1]})


async def serve(settings: ServiceSettings, connections: ConnectionsSettings, connection: Connection | None) -> None:
    service = BridgeService(settings, connections_api=functools.partial(build_connections_api, settings=connections))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.request_shutdown)
    await service.run(connection)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        container = ContainerSettings.from_env(os.environ, host=args.host, port=args.port, config_file=args.config)
    except SettingsError as exc:
        configure_logging()
        logger.error("%s", exc)  # one line naming every invalid variable
        return 2
    configure_logging(container.service.log_level)
    settings = with_ecs_task_id(container.service)
    # CRT calls into Python for every publish it completes. When the asyncio thread is busy, CRT's event-loop
    # thread waits for the GIL up to the switch interval each time (5 ms by default: ~200 publishes/s under
    # saturation); 1 ms keeps publishing flowing while HTTP requests pour in (measured: 5.4k -> 10.9k msg/s).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_SECS)
    connection = None
    if settings.config_file:
        try:
            connection = load_connection_file(settings.config_file)
        except ConfigError as exc:
            for issue in exc.issues:
                logger.error("%s: %s", exc.source, issue)
            return 2
    if settings.lift_rate_limits:
        logger.warning(
            "%s is set: rate limits are lifted (benchmarks against a local broker only)", EnvVar.LIFT_RATE_LIMITS
        )
    try:
        uvloop.run(serve(settings, container.connections, connection))
    except Exception:
        logger.exception("the bridge stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
