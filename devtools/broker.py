"""mosquitto on 127.0.0.1 standing in for AWS IoT Core: mTLS like port 8883, WSS like port 443."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

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

    tls: int  # mutual TLS, client certificate required (IoT Core's 8883)
    wss: int  # MQTT over TLS websockets, no client certificate (IoT Core's 443)
    plain: int  # loopback-only plain MQTT, for mosquitto_sub while developing

    @classmethod
    def pick(cls) -> BrokerPorts:
        return cls(tls=free_port(), wss=free_port(), plain=free_port())


class LocalBroker:
    """Runs mosquitto with a config written under ``workdir``; a context manager that stops it on exit."""

    def __init__(self, workdir: Path, pki: DevPki, ports: BrokerPorts | None = None) -> None:
        self.workdir = workdir
        self.pki = pki
        self.ports = ports or BrokerPorts.pick()
        self.server_cert = pki.server()
        self._process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"

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
            "persistence false\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "connection_messages true\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 100000\n"
            f"listener {self.ports.plain} {LOOPBACK}\n"
            "allow_anonymous true\n"
            f"listener {self.ports.tls} {LOOPBACK}\n"
            + tls
            + "require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n"
            f"listener {self.ports.wss} {LOOPBACK}\n"
            "protocol websockets\n"
            "socket_domain ipv4\n" + tls + "require_certificate false\nallow_anonymous true\n"
        )

    def start(self) -> LocalBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "mosquitto.conf"
        config_path.write_text(self._config())
        self._process = subprocess.Popen(
            [find_mosquitto(), "-c", str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C in `make run` is handled by the parent, which stops us in order
        )
        try:
            for port in (self.ports.plain, self.ports.tls, self.ports.wss):
                wait_for_port(port)
        except TimeoutError as exc:
            self.stop()
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise BrokerError(f"mosquitto did not start: {exc}\n{log[-2000:]}") from exc
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed broker would."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
