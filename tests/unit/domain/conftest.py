"""Fixtures for the shared domain tests: a valid connection document and a matching certificate pair."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from devtools.pki import CertPair, DevPki


@pytest.fixture(scope="session")
def bridge_cert(pki: DevPki) -> CertPair:
    return pki.client("domain-bridge")


@pytest.fixture(scope="session")
def other_cert(pki: DevPki) -> CertPair:
    return pki.client("domain-other")


CERT_ARN = "arn:aws:iot:eu-central-1:123456789012:cert/" + "ab" * 32


def valid_document(cert: CertPair) -> dict[str, Any]:
    return {
        "connectorId": "actility-aws-iot",
        "name": "Actility AWS Connection",
        "configuration": {
            "description": "AWS Europe Datacenter",
            "uplinkTopicPattern": "tpx/things/{DevEUI}/uplink",
            "downlinkTopicPattern": "tpx/things/{DevEUI}/downlink",
            "deviceType": "actilitytestsensor",
            "region": "eu-central-1",
            "accountPrefix": "a2plmnutiyt-ats",
            "secretAccessKey": "lymHcNdzkkolnhZHnV5Q5YN/GTMFNiARtAj/7dz6758",
            "accessKeyId": "AKIFAQFMTO34B3XZGHYA",
            "certificateId": CERT_ARN,
            "certificate": cert.cert_pem,
            "privateKey": cert.key_pem,
        },
    }


@pytest.fixture
def document(bridge_cert: CertPair) -> dict[str, Any]:
    """The seed's POST /connections example with a real certificate pair (a fresh copy per test)."""
    return copy.deepcopy(valid_document(bridge_cert))
