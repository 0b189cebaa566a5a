"""The stand-in's asyncio server: IoT Core's listeners in front of mosquitto's plain loopback listener.

Each client connection is a :class:`Link`: TLS (client certificate required on the mTLS listeners, TLS 1.2+) ends
here, the MQTT stream is cut into packets, the rules judge every CONNECT, PUBLISH and SUBSCRIBE in both directions,
and what passes is forwarded byte for byte to the broker over loopback. A small HTTP endpoint on loopback serves
the counters: ``GET /violations``, ``POST /reset``, ``GET /healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from devtools.iotcore import codec
from devtools.iotcore.codec import MalformedPacketError
from devtools.iotcore.rules import Action, ConnectionAccount, Direction, IotCoreRules, Reason
from devtools.iotcore.websocket import WebSocketError, WebSocketServer, frame
from devtools.ports import LOOPBACK

logger = logging.getLogger(__name__)

CONTROL_READ_TIMEOUT_SECS: Final = 5.0
HANDSHAKE_TIMEOUT_SECS: Final = 10.0

# The MQTT 5 reason code a rejected publish or subscription closes the connection with.
_CLOSE_REASONS: Final = {
    Reason.TOPIC_TOO_LONG: codec.REASON_TOPIC_NAME_INVALID,
    Reason.TOPIC_TOO_DEEP: codec.REASON_TOPIC_NAME_INVALID,
    Reason.PAYLOAD_TOO_LARGE: codec.REASON_PACKET_TOO_LARGE,
    Reason.RESERVED_TOPIC: codec.REASON_NOT_AUTHORIZED,
    Reason.SUBSCRIPTION_LIMIT: codec.REASON_QUOTA_EXCEEDED,
}
# The packets the proxy reads (every other one passes as bytes): the rules' inputs, and the broker's PUBACKs that end
# a client's unacknowledged QoS 1 publishes.
_JUDGED: Final = frozenset({codec.PUBLISH, codec.PUBACK, codec.CONNECT, codec.SUBSCRIBE, codec.UNSUBSCRIBE})
_CONNACK_REFUSALS: Final = {
    Reason.CONNECT_RATE: (codec.REASON_CONNECTION_RATE_EXCEEDED, codec.RETURN_SERVER_UNAVAILABLE),
    Reason.CLIENT_ID_TOO_LONG: (codec.REASON_CLIENT_ID_NOT_VALID, codec.RETURN_IDENTIFIER_REJECTED),
}


@dataclass(frozen=True, slots=True)
class StandInSettings:
    """Where the stand-in listens, what it forwards to, and its server certificate."""

    upstream_port: int  # the broker's plain loopback listener
    mtls_port: int  # IoT Core's 8883: client certificate required, rules enforced
    control_port: int  # GET /violations
    ca_file: Path
    cert_file: Path
    key_file: Path
    wss_port: int | None = None  # IoT Core's 443 (MQTT over WebSockets), rules enforced
    audit_port: int | None = None  # mTLS, rules counted apart and not applied (the stand-in's overhead figure)
    host: str = LOOPBACK
    upstream_host: str = LOOPBACK


def server_tls_context(settings: StandInSettings, *, client_certificate: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert_file, settings.key_file)
    if client_certificate:
        context.load_verify_locations(settings.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Side(asyncio.Protocol):
    """One end of a link: hands its bytes to the link; when its writes back up, the other end stops reading."""

    def __init__(self, link: Link, *, upstream: bool) -> None:
        self.link = link
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)
        self.link.attached(self, self.transport)

    def data_received(self, data: bytes) -> None:
        if self.upstream:
            self.link.from_upstream(data)
        else:
            self.link.from_client(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream:
            self.link.close()
        else:
            self.link.client_finished()

    def pause_writing(self) -> None:
        self.link.other(self).pause_reading()

    def resume_writing(self) -> None:
        self.link.other(self).resume_reading()


class _TlsClientSide(_Side):
    """The client end, TLS done here with memory BIOs so that a refused handshake's alert reaches the client.

    The event loops' own TLS transports abort the socket on a failed handshake without sending the alert; a client
    with an untrusted certificate would then see a bare socket close instead of IoT Core's TLS failure. This end is
    also the link's client "transport" (write, close, flow control).
    """

    def __init__(self, link: Link, context: ssl.SSLContext) -> None:
        super().__init__(link, upstream=False)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._raw: asyncio.Transport | None = None
        self._established = False
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._raw = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT_SECS, self._handshake_deadline)

    def _handshake_deadline(self) -> None:
        if not self._established and self._raw is not None:
            self._raw.abort()

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending and self._raw is not None and not self._raw.is_closing():
            self._raw.write(pending)

    def data_received(self, data: bytes) -> None:
        self._incoming.write(data)
        if not self._established:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, OSError) as exc:
                logger.debug("TLS handshake refused: %s", exc)
                self._flush()  # the alert
                self.close()
                return
            self._established = True
            self._flush()
            self.link.attached(self, cast(asyncio.Transport, self))
        chunks, finished = [], False
        while True:
            try:
                chunk = self._tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLError, OSError):
                self.close()
                return
            if not chunk:  # close_notify
                finished = True
                break
            chunks.append(chunk)
        self._flush()
        if chunks:
            self.link.from_client(b"".join(chunks))
        if finished:
            self.link.client_finished()

    # --- the transport the link writes to ----------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self._tls.write(data)
        self._flush()

    def is_closing(self) -> bool:
        return self._closed or self._raw is None or self._raw.is_closing()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._established:
            with contextlib.suppress(ssl.SSLError, OSError):
                self._tls.unwrap()  # close_notify
        self._flush()
        if self._raw is not None:
            self._raw.close()

    def pause_reading(self) -> None:
        if self._raw is not None and not self._raw.is_closing():
            self._raw.pause_reading()

    def resume_reading(self) -> None:
        if self._raw is not None and not self._raw.is_closing():
            self._raw.resume_reading()


class _NoTransport:
    """Stands for a link end that is not connected (yet): flow control on it does nothing."""

    def pause_reading(self) -> None:
        return

    def resume_reading(self) -> None:
        return


class Link:
    """One client connection and its connection to the broker."""

    def __init__(self, stand_in: StandIn, *, enforced: bool, websocket: bool) -> None:
        self.stand_in = stand_in
        self.rules = stand_in.rules
        self.account: ConnectionAccount = self.rules.open_connection(enforced=enforced)
        self.websocket = WebSocketServer() if websocket else None
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.level = codec.MQTT_311
        self.closing = False
        self._inbound = b""  # client → broker bytes not yet a whole packet (or waiting for the broker connection)
        self._client_finished = False
        self._outbound = b""
        self._aliases: dict[Direction, dict[int, str]] = {Direction.INBOUND: {}, Direction.OUTBOUND: {}}

    # --- plumbing ----------------------------------------------------------------------------------------------
    def attached(self, side: _Side, transport: asyncio.Transport) -> None:
        if self.closing:
            transport.close()
            return
        if side.upstream:
            self.upstream = transport
            if self._inbound:
                self.from_client(b"")
            if self._client_finished:
                self.close()
        else:
            self.client = transport
            self.stand_in.links[self.account.serial] = self
            self.stand_in.spawn(self._open_upstream())

    def other(self, side: _Side) -> asyncio.Transport | _NoTransport:
        transport = self.client if side.upstream else self.upstream
        return transport if transport is not None and not transport.is_closing() else _NoTransport()

    async def _open_upstream(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.stand_in.settings
        try:
            await loop.create_connection(
                lambda: _Side(self, upstream=True), settings.upstream_host, settings.upstream_port
            )
        except OSError as exc:
            logger.info("broker unreachable for connection %d: %s", self.account.serial, exc)
            self.close()

    def client_finished(self) -> None:
        """The client closed its end: what it sent still goes to the broker (once connected), then both close."""
        self._client_finished = True
        if self.upstream is not None or self.client is None:
            self.close()

    def close(self, reason: int | None = None) -> None:
        """Close both ends; an MQTT 5 client first gets a DISCONNECT with ``reason``."""
        if self.closing:
            return
        self.closing = True
        if self.client is not None:
            if reason is not None and not self.client.is_closing():
                self._to_client([codec.disconnect(self.level, reason)])
            self.client.close()
        if self.upstream is not None:
            self.upstream.close()
        self.rules.close_connection(self.account)
        self.stand_in.links.pop(self.account.serial, None)

    def _to_client(self, chunks: list[bytes]) -> None:
        data = b"".join(chunks)
        if not data or self.client is None or self.client.is_closing():
            return
        self.client.write(frame(data) if self.websocket is not None else data)

    # --- client → broker ---------------------------------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        if self.closing:
            return
        if self.websocket is not None and data:
            try:
                received = self.websocket.feed(data)
            except WebSocketError as exc:
                logger.info("connection %d: %s", self.account.serial, exc)
                self.close()
                return
            if self.client is not None:
                for reply in received.replies:
                    self.client.write(reply)
            if received.closed:
                self.close()
                return
            data = received.data
        data = self._inbound + data if self._inbound else data
        if self.upstream is None:
            self._inbound = data
            return
        forward, self._inbound = self._cut(data, self._judge_inbound)
        if forward and not self.closing:
            self.upstream.write(b"".join(forward))

    def _judge_inbound(self, kind: int, first_byte: int, body: memoryview) -> bool:
        """Whether the packet goes on to the broker (the stand-in may have answered it itself)."""
        if kind == codec.PUBLISH:
            return self._judge_publish(Direction.INBOUND, first_byte, body)
        if kind == codec.CONNECT:
            connect = codec.parse_connect(body)
            self.level = connect.protocol_level
            verdict = self.rules.connect(self.account, connect.client_id, connect.client_id_bytes, self.level)
            if not verdict.accepted:
                assert verdict.reason is not None
                self._to_client([codec.connack_refused(self.level, *_CONNACK_REFUSALS[verdict.reason])])
                self.close()
                return False
            if verdict.taken_over is not None:
                older = self.stand_in.links.get(verdict.taken_over.serial)
                if older is not None:
                    older.close(codec.REASON_SESSION_TAKEN_OVER)
            return True
        if kind == codec.SUBSCRIBE:
            packet_id, filters = codec.parse_subscription_filters(kind, body, self.level)
            refused = self.rules.subscribe(self.account, filters)
            if refused is not None:
                failure = codec.REASON_QUOTA_EXCEEDED if self.level == codec.MQTT_5 else codec.SUBACK_FAILURE_311
                self._to_client([codec.suback(packet_id, [failure] * len(filters), self.level)])
                self.close(_CLOSE_REASONS[refused])
                return False
            return True
        if kind == codec.UNSUBSCRIBE:
            _, filters = codec.parse_subscription_filters(kind, body, self.level)
            self.rules.unsubscribe(self.account, filters)
        return True

    # --- broker → client ---------------------------------------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        if self.closing:
            return
        data = self._outbound + data if self._outbound else data
        forward, self._outbound = self._cut(data, self._judge_outbound)
        if not self.closing:
            self._to_client(forward)

    def _judge_outbound(self, kind: int, first_byte: int, body: memoryview) -> bool:
        if kind == codec.PUBLISH:
            return self._judge_publish(Direction.OUTBOUND, first_byte, body)
        if kind == codec.PUBACK and len(body) >= 2:
            self.rules.qos1_acknowledged(self.account, int.from_bytes(body[0:2], "big"))
        return True

    # --- both ways ---------------------------------------------------------------------------------------------
    def _cut(self, data: bytes, judge: Callable[[int, int, memoryview], bool]) -> tuple[list[bytes], bytes]:
        """Whole packets of ``data`` that pass ``judge`` (as runs of the original bytes), and the incomplete rest."""
        view = memoryview(data)
        forward: list[bytes] = []
        position = run = 0
        try:
            while not self.closing:
                split = codec.split_packet(data, position)
                if split is None:
                    break
                body, end = split
                first_byte = data[position]
                kind = first_byte >> 4
                if kind in _JUDGED and not judge(kind, first_byte, view[body:end]):
                    if run < position:
                        forward.append(data[run:position])
                    run = end
                position = end
        except MalformedPacketError as exc:
            logger.info("connection %d (%s): %s", self.account.serial, self.account.client_id, exc)
            self.close()
            return [], b""
        if run < position:
            forward.append(data[run:position])
        return forward, data[position:]

    def _judge_publish(self, direction: Direction, first_byte: int, body: memoryview) -> bool:
        publish = codec.parse_publish(first_byte, body, self.level)
        topic, topic_bytes = publish.topic, publish.topic_bytes
        if publish.topic_alias is not None:
            aliases = self._aliases[direction]
            if topic_bytes:
                aliases[publish.topic_alias] = topic
            else:
                topic = aliases.get(publish.topic_alias, "")
                topic_bytes = len(topic.encode())
        verdict = self.rules.publish(self.account, direction, topic, topic_bytes, publish.payload_bytes)
        if verdict.action is Action.FORWARD:
            if direction is Direction.INBOUND and publish.packet_id is not None:
                self.rules.qos1_forwarded(self.account, publish.packet_id)
            return True
        acknowledge = publish.packet_id is not None
        if direction is Direction.OUTBOUND:
            # Discarded on its way to the client: acknowledged to the broker here, so it does not hold it in flight.
            if acknowledge and self.upstream is not None:
                assert publish.packet_id is not None
                self.upstream.write(codec.puback(publish.packet_id))
            return False
        if verdict.action is Action.INGEST:
            if acknowledge:
                assert publish.packet_id is not None
                self._to_client([codec.puback(publish.packet_id)])
        elif verdict.action is Action.DISCARD:
            if acknowledge and self.level == codec.MQTT_5:
                assert publish.packet_id is not None
                self._to_client([codec.puback(publish.packet_id, codec.REASON_QUOTA_EXCEEDED)])
        else:
            assert verdict.reason is not None
            self.close(_CLOSE_REASONS[verdict.reason])
        return False


class StandIn:
    """The listeners, the links and the counters of one stand-in process."""

    def __init__(self, settings: StandInSettings, rules: IotCoreRules | None = None) -> None:
        self.settings = settings
        self.rules = rules or IotCoreRules()
        self.links: dict[int, Link] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.settings
        mtls = server_tls_context(settings, client_certificate=True)
        listeners: list[tuple[int | None, ssl.SSLContext, bool, bool]] = [
            (settings.mtls_port, mtls, True, False),
            (settings.audit_port, mtls, False, False),
            (settings.wss_port, server_tls_context(settings, client_certificate=False), True, True),
        ]
        for port, context, enforced, websocket in listeners:
            if port is None:
                continue

            def factory(
                enforced: bool = enforced, websocket: bool = websocket, context: ssl.SSLContext = context
            ) -> _Side:
                return _TlsClientSide(Link(self, enforced=enforced, websocket=websocket), context)

            self._servers.append(await loop.create_server(factory, settings.host, port, reuse_address=True))
        self._servers.append(
            await asyncio.start_server(self._control, settings.host, settings.control_port, reuse_address=True)
        )

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for link in list(self.links.values()):
            link.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A minimal HTTP/1.1 endpoint, one request per connection."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONTROL_READ_TIMEOUT_SECS)
            method, path = head.split(b" ", 2)[:2]
            status, document = self._answer(method.decode(), path.decode())
            body = json.dumps(document).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            logger.info("control request failed: %s", exc)
        finally:
            writer.close()

    def _answer(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        if method == "GET" and path == "/violations":
            return "200 OK", self.rules.report()
        if method == "POST" and path == "/reset":
            self.rules.reset()
            return "200 OK", self.rules.report()
        if method == "GET" and path == "/healthz":
            return "200 OK", {"status": "ok", "connections": len(self.links)}
        return "404 Not Found", {"error": f"no {method} {path}"}
