"""The local AWS IoT Core: mosquitto on 127.0.0.1 behind the enforcing stand-in (mTLS like 8883, WSS like 443).

Listeners (:class:`BrokerPorts`):

* ``tls`` / ``wss``: the stand-in (``devtools.iotcore``, a process of its own), which holds every client to IoT
  Core's rules and counts what AWS would have discarded or refused; it forwards over loopback to ``plain``.
* ``plain``: mosquitto's loopback-only plain listener, the **observer** port. Test subscribers and benchmark
  receivers that read a whole fleet's traffic (1000 msg/s) are measurement tools, not AWS clients: they connect
  here and are held to nothing.
* ``tls_unenforced``: mosquitto's own mTLS listener, for the benchmarks' ceiling runs (which lift the bridge's
  rate limits on purpose) and for tools that need TLS but are not under test.
* ``audit``: the stand-in's mTLS listener that counts (apart) and applies nothing: its overhead figure.
* ``control``: the stand-in's ``GET /violations``.

``LocalBroker(..., enforce=False)`` is the old arrangement: ``tls`` and ``wss`` are mosquitto's own listeners.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from devtools.iotcore.client import StandInClient
from devtools.pki import DevPki
from devtools.ports import LOOPBACK, free_port, wait_for_port

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")
STOP_TIMEOUT_SECS = 5.0


class BrokerError(RuntimeError):
    """mosquitto is missing or did not start."""


def find_mosquitto() -> str:
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise BrokerError("mosquitto is not installed: run `make system-deps` (or apt-get install mosquitto)")


@dataclass(frozen=True, slots=True)
class BrokerPorts:
    """Where the local broker listens."""

    tls: int  # mutual TLS, client certificate required (IoT Core's 8883); the enforcing stand-in
    wss: int  # MQTT over TLS websockets, no client certificate (IoT Core's 443); the enforcing stand-in
    plain: int  # mosquitto's loopback-only plain MQTT: the observer port, held to no rule
    tls_unenforced: int = field(default_factory=free_port)  # mosquitto's own mTLS listener
    audit: int = field(default_factory=free_port)  # the stand-in's mTLS listener that only counts
    control: int = field(default_factory=free_port)  # the stand-in's GET /violations

    @classmethod
    def pick(cls) -> BrokerPorts:
        return cls(tls=free_port(), wss=free_port(), plain=free_port())


class LocalBroker:
    """Runs mosquitto and the stand-in with configs under ``workdir``; a context manager that stops them on exit."""

    def __init__(
        self,
        workdir: Path,
        pki: DevPki,
        ports: BrokerPorts | None = None,
        *,
        enforce: bool = True,
        persistence: bool = False,
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.ports = ports or BrokerPorts.pick()
        self.enforce = enforce
        # Persistent sessions and their queued messages survive a restart (saved every second and at stop), as
        # AWS IoT keeps them across its own failures. mosquitto 2.0.11 restores the sessions but not their shared
        # subscriptions: a test of messages queued across a restart subscribes a plain filter.
        self.persistence = persistence
        self.server_cert = pki.server()
        self._process: subprocess.Popen[bytes] | None = None
        self._stand_in: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"
        self.stand_in_log_path = workdir / "iotcore.log"

    @property
    def stand_in(self) -> StandInClient | None:
        """The stand-in's counters (None when rules are not enforced)."""
        return StandInClient(self.ports.control) if self.enforce else None

    @property
    def stand_in_pid(self) -> int | None:
        return self._stand_in.pid if self._stand_in is not None else None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def ca_file(self) -> Path:
        return self.pki.ca.cert_path

    def _config(self) -> str:
        tls = (
            f"cafile {self.pki.ca.cert_path}\n"
            f"certfile {self.server_cert.cert_path}\n"
            f"keyfile {self.server_cert.key_path}\n"
            "tls_version tlsv1.2\n"
        )
        return (
            "per_listener_settings true\n"
            # As root, mosquitto would drop to user 'mosquitto', which cannot read the keys; not root: ignored.
            "user root\n"
            + (
                f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
                if self.persistence
                else "persistence false\n"
            )
            + f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "connection_messages true\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 100000\n"
            f"listener {self.ports.plain} {LOOPBACK}\n"
            "allow_anonymous true\n"
            f"listener {self.ports.tls_unenforced if self.enforce else self.ports.tls} {LOOPBACK}\n"
            + tls
            + "require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n"
            + (
                ""  # the stand-in ends WSS itself and forwards plain MQTT
                if self.enforce
                else f"listener {self.ports.wss} {LOOPBACK}\nprotocol websockets\nsocket_domain ipv4\n"
                + tls
                + "require_certificate false\nallow_anonymous true\n"
            )
        )

    def _stand_in_command(self) -> list[str]:
        ports = self.ports
        return [
            sys.executable, "-m", "devtools.iotcore",
            "--upstream-port", str(ports.plain), "--mtls-port", str(ports.tls), "--wss-port", str(ports.wss),
            "--audit-port", str(ports.audit), "--control-port", str(ports.control),
            "--ca", str(self.pki.ca.cert_path), "--cert", str(self.server_cert.cert_path),
            "--key", str(self.server_cert.key_path),
        ]  # fmt: skip

    def _listening_ports(self) -> tuple[int, ...]:
        ports = self.ports
        if self.enforce:
            return (ports.plain, ports.tls_unenforced, ports.tls, ports.wss, ports.audit, ports.control)
        return (ports.plain, ports.tls, ports.wss)

    def start(self) -> LocalBroker:
        """Start mosquitto (and the stand-in, unless it still runs from before a :meth:`kill`); wait for every port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "mosquitto.conf"
        config_path.write_text(self._config())
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in `make run` is handled by the parent, which stops us in order
        )
        if self.enforce and not _alive(self._stand_in):
            with self.stand_in_log_path.open("ab") as log:
                self._stand_in = subprocess.Popen(
                    self._stand_in_command(), stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
                )
        try:
            for port in self._listening_ports():
                wait_for_port(port)
        except TimeoutError as exc:
            self.stop()
            logs = [path.read_text()[-2000:] for path in (self.log_path, self.stand_in_log_path) if path.exists()]
            raise BrokerError(f"the local broker did not start: {exc}\n" + "\n".join(logs)) from exc
        return self

    def stop(self) -> None:
        """Stop the stand-in, then mosquitto (SIGTERM, SIGKILL after a timeout)."""
        stand_in, self._stand_in = self._stand_in, None
        _terminate(stand_in)
        process, self._process = self._process, None
        _terminate(process)
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """Stop mosquitto abruptly (SIGKILL), as a crashed broker would.

        The stand-in (AWS's front door) stays up with its counters: its client connections drop with their broker
        connections, and new ones are closed until :meth:`start` brings mosquitto back.
        """
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def pause(self) -> None:
        """Freeze mosquitto (SIGSTOP) until :meth:`kill`: a broker that reads and answers nothing any more."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    @property
    def running(self) -> bool:
        return _alive(self._process)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _alive(process: subprocess.Popen[bytes] | None) -> bool:
    return process is not None and process.poll() is None


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if not _alive(process):
        return
    assert process is not None
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
