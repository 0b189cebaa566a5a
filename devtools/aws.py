"""moto's server standing in for the AWS control plane (IoT, iot-data, DynamoDB, Secrets Manager, SNS)."""

from __future__ import annotations

from types import TracebackType

from moto.server import ThreadedMotoServer

from devtools.ports import LOOPBACK, free_port, wait_for_port

# moto accepts any credentials; these fake ones keep boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class LocalAws:
    """A moto server on 127.0.0.1; ``endpoint_url`` goes into ``AWS_ENDPOINT_URL``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=self.port, verbose=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LocalAws:
        self._server.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
