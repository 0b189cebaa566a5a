"""``python -m bridge_container [--config FILE] [--host H] [--port P]``: run the bridge until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

import httpx
import uvloop

from bridge_container.connections.factory import build_connections_api
from bridge_container.logs import configure_logging
from bridge_container.service import BridgeService, EnvVar, ServiceSettings
from bridge_domain.connection import Connection
from bridge_domain.exceptions import ConfigError
from bridge_domain.loading import load_connection_file

logger = logging.getLogger("bridge_container")

ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
ECS_METADATA_TIMEOUT_SECS = 2.0
GIL_SWITCH_INTERVAL_SECS = 0.001


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge_container", description=__doc__)
    parser.add_argument("--config", help=f"connection file started as connection 'default' (env {EnvVar.CONFIG_FILE})")
    parser.add_argument("--host", help=f"HTTP listen address (env {EnvVar.HTTP_HOST}, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"HTTP port (env {EnvVar.HTTP_PORT}, default 8080)")
    return parser.parse_args(argv)


def task_id_from_environment(environ: Mapping[str, str]) -> str:
    """BRIDGE_TASK_ID, else the ECS task id from the task metadata endpoint, else the host name."""
    explicit = environ.get(EnvVar.TASK_ID)
    if explicit:
        return explicit
    metadata_uri = environ.get(ECS_METADATA_ENV)
    if metadata_uri:
        try:
            task_arn = httpx.get(f"{metadata_uri}/task", timeout=ECS_METADATA_TIMEOUT_SECS).json()["TaskARN"]
            return str(task_arn).rsplit("/", 1)[-1]
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            logger.warning("ECS task metadata unavailable (%s); using the host name as task id", exc)
    return socket.gethostname()


async def serve(settings: ServiceSettings, connection: Connection | None) -> None:
    service = BridgeService(settings, connections_api=build_connections_api)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, service.request_shutdown)
    await service.run(connection)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    environ = os.environ
    settings = ServiceSettings.from_env(
        environ,
        task_id=task_id_from_environment(environ),
        host=args.host,
        port=args.port,
        config_file=args.config,
    )
    configure_logging(settings.log_level)
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
        uvloop.run(serve(settings, connection))
    except Exception:
        logger.exception("the bridge stopped on an error")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
