"""Session-wide fixtures: fake AWS credentials, the dev PKI, the local IoT Core (stand-in + mosquitto) and moto."""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from devtools.aws import FAKE_CREDENTIALS, LocalAws
from devtools.broker import LocalBroker
from devtools.pki import DevPki
from tests import aws_rules

TEST_REGION = "eu-central-1"


@pytest.fixture(scope="session", autouse=True)
def _fake_aws_credentials() -> Iterator[None]:
    """No test may reach real AWS: fake credentials and a fixed region for the whole session."""
    saved = {key: os.environ.get(key) for key in [*FAKE_CREDENTIALS, "AWS_DEFAULT_REGION", "AWS_PROFILE"]}
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = TEST_REGION
    os.environ.pop("AWS_PROFILE", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs the bridge's entry point in-process (which configures the root logger on the stderr pytest
    captures) must not leave that handler behind, writing into a closed capture for every later test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A CA with server and client certificates, created once per test session."""
    return DevPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def rogue_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    """A second, untrusted CA: its client certificates must be refused by the broker."""
    return DevPki(tmp_path_factory.mktemp("rogue-pki"), ca_name="rogue-ca")


@pytest.fixture(scope="session")
def broker(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """The local IoT Core shared by the session: the enforcing stand-in (mTLS, WSS) in front of mosquitto."""
    with LocalBroker(tmp_path_factory.mktemp("broker"), pki) as running:
        yield running


@pytest.fixture
def private_broker(pki: DevPki, tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of the test's own, for tests that kill or restart it."""
    with LocalBroker(tmp_path / "broker", pki) as running:
        yield running


@pytest.fixture
def local_aws() -> Iterator[LocalAws]:
    """moto's server on a free loopback port (for code that talks to AWS over HTTP)."""
    with LocalAws() as server:
        yield server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a test during which AWS IoT Core would have discarded or refused something (see ``tests/aws_rules``)."""
    brokers = aws_rules.checked_brokers(item)
    before = aws_rules.read(brokers)
    try:
        result = yield
    except BaseException as exc:
        if brokers:
            aws_rules.annotate(item, exc, brokers, before)
        raise
    if brokers:
        aws_rules.judge(item, aws_rules.grown(brokers, before))
    return result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = aws_rules.summary_lines(config)
    if lines:
        terminalreporter.section(f"AWS IoT Core violations of tests marked {aws_rules.KNOWN_MARKER}")
        for line in lines:
            terminalreporter.line(line)
