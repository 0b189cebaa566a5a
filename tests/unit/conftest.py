"""Fixtures shared by the unit tests: an empty moto account and the IoT registry on it (thing type, certificate)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from bridge_domain.registration import CLIENT_RETRIES

THING_TYPE = "lorawan-device"


@pytest.fixture
def aws() -> Iterator[None]:
    """An empty moto account for the test."""
    with mock_aws():
        yield


@pytest.fixture
def iot(aws: None) -> Any:
    """An IoT client without botocore retries, as the registrar requires."""
    return boto3.client("iot", config=Config(retries=dict(CLIENT_RETRIES)))


@pytest.fixture
def thing_type(iot: Any) -> str:
    iot.create_thing_type(thingTypeName=THING_TYPE)
    return THING_TYPE


@pytest.fixture
def certificate_arn(iot: Any) -> str:
    """The bridge certificate the registrar attaches to each thing."""
    arn: str = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    return arn
