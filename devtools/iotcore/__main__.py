"""``python -m devtools.iotcore``: the AWS IoT Core stand-in as a process of its own (uvloop), until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from devtools.iotcore.proxy import StandIn, StandInSettings

logger = logging.getLogger("devtools.iotcore")


def _quiet_handshake_failures(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Clients refused at the TLS handshake (no or an untrusted certificate, port probes) are expected here."""
    exception = context.get("exception")
    if isinstance(exception, OSError):  # ssl.SSLError is an OSError
        logger.debug("%s: %s", context.get("message"), exception)
        return
    loop.default_exception_handler(context)


async def serve(settings: StandInSettings) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_handshake_failures)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    stand_in = StandIn(settings)
    await stand_in.start()
    logger.info("AWS IoT Core stand-in listening: %s", settings)
    await stop.wait()
    await stand_in.close()


def _parse(argv: Sequence[str] | None) -> StandInSettings:
    parser = argparse.ArgumentParser(prog="python -m devtools.iotcore", description=__doc__)
    parser.add_argument("--upstream-port", type=int, required=True, help="the broker's plain loopback listener")
    parser.add_argument("--mtls-port", type=int, required=True, help="IoT Core's 8883: mTLS, rules enforced")
    parser.add_argument("--control-port", type=int, required=True, help="GET /violations, POST /reset")
    parser.add_argument("--wss-port", type=int, help="IoT Core's 443: MQTT over WebSockets, rules enforced")
    parser.add_argument("--audit-port", type=int, help="mTLS, rules counted apart and not applied")
    parser.add_argument("--ca", type=Path, required=True, help="CA of the client certificates")
    parser.add_argument("--cert", type=Path, required=True, help="server certificate")
    parser.add_argument("--key", type=Path, required=True, help="server key")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return StandInSettings(
        upstream_port=args.upstream_port,
        mtls_port=args.mtls_port,
        control_port=args.control_port,
        wss_port=args.wss_port,
        audit_port=args.audit_port,
        ca_file=args.ca,
        cert_file=args.cert,
        key_file=args.key,
    )


def main(argv: Sequence[str] | None = None) -> None:
    uvloop.run(serve(_parse(argv)))


if __name__ == "__main__":
    main()
