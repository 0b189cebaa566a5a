"""The bridge-certificate custom resource on moto: create, update and delete leave IoT and Secrets Manager right."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bridge_domain import pem
from lambdas.bridge_certificate import handler
from lambdas.bridge_certificate.exceptions import CertificateStillInUseError, InvalidPropertiesError
from lambdas.bridge_certificate.logic import DELETE_ATTEMPTS, Clients, handle
from lambdas.bridge_certificate.properties import Attribute, Property, SecretKey

POLICY = "bridge-policy"
OTHER_POLICY = "bridge-policy-2"
POLICY_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:x"}]}
)


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        iot = boto3.client("iot")
        for name in (POLICY, OTHER_POLICY):
            iot.create_policy(policyName=name, policyDocument=POLICY_DOCUMENT)
        yield Clients(iot=iot, secretsmanager=boto3.client("secretsmanager"))


def _secret(clients: Clients, name: str = "bridge-certificate") -> str:
    return str(clients.secretsmanager.create_secret(Name=name, SecretString="{}")["ARN"])


def _event(request: str, secret_id: str, policy: str = POLICY, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResourceProperties": {Property.POLICY_NAME: policy, Property.SECRET_ID: secret_id, "ServiceToken": "arn"},
        **extra,
    }


def _no_sleep(_secs: float) -> None:
    return None


def _create(clients: Clients, secret_id: str) -> dict[str, Any]:
    return handle(_event("Create", secret_id), clients, sleep=_no_sleep)


def test_create_stores_a_matching_key_and_certificate_in_the_secret(clients: Clients) -> None:
    secret_id = _secret(clients)

    response = _create(clients, secret_id)

    stored = json.loads(clients.secretsmanager.get_secret_value(SecretId=secret_id)["SecretString"])
    assert pem.key_matches_certificate(stored[SecretKey.PRIVATE_KEY], stored[SecretKey.CERTIFICATE])
    assert stored[SecretKey.CERTIFICATE_ARN] == response["Data"][Attribute.CERTIFICATE_ARN]
    assert response["PhysicalResourceId"] == response["Data"][Attribute.CERTIFICATE_ID]


def test_create_returns_no_key_material_to_cloudformation(clients: Clients) -> None:
    response = _create(clients, _secret(clients))

    assert "PRIVATE KEY" not in json.dumps(response)
    assert set(response["Data"]) == {Attribute.CERTIFICATE_ARN, Attribute.CERTIFICATE_ID}


def test_create_leaves_an_active_certificate_with_the_policy_attached(clients: Clients) -> None:
    response = _create(clients, _secret(clients))

    certificate_id = response["PhysicalResourceId"]
    description = clients.iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    attached = clients.iot.list_attached_policies(target=response["Data"][Attribute.CERTIFICATE_ARN])["policies"]
    assert description["status"] == "ACTIVE"
    assert [policy["policyName"] for policy in attached] == [POLICY]


def test_create_deletes_the_certificate_when_the_key_cannot_be_stored(clients: Clients) -> None:
    missing_secret = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:missing-AbCdEf"

    with pytest.raises(ClientError):
        _create(clients, missing_secret)

    assert clients.iot.list_certificates()["certificates"] == []


def test_delete_detaches_things_and_policies_then_deletes_the_certificate(clients: Clients) -> None:
    response = _create(clients, _secret(clients))
    certificate_id = response["PhysicalResourceId"]
    certificate_arn = response["Data"][Attribute.CERTIFICATE_ARN]
    clients.iot.create_thing(thingName="70B3D57ED0000001")
    clients.iot.attach_thing_principal(thingName="70B3D57ED0000001", principal=certificate_arn)

    result = handle(_event("Delete", "unused", PhysicalResourceId=certificate_id), clients, sleep=_no_sleep)

    assert result == {"PhysicalResourceId": certificate_id}
    assert clients.iot.list_certificates()["certificates"] == []
    assert clients.iot.list_thing_principals(thingName="70B3D57ED0000001")["principals"] == []


@pytest.mark.parametrize("physical_id", ["ab" * 32, "2026/01/01/[$LATEST]placeholder"])
def test_delete_of_a_certificate_that_does_not_exist_succeeds(clients: Clients, physical_id: str) -> None:
    result = handle(_event("Delete", "unused", PhysicalResourceId=physical_id), clients, sleep=_no_sleep)

    assert result == {"PhysicalResourceId": physical_id}


def test_update_with_a_new_policy_name_swaps_the_attached_policy(clients: Clients) -> None:
    secret_id = _secret(clients)
    created = _create(clients, secret_id)
    certificate_id = created["PhysicalResourceId"]
    event = _event(
        "Update",
        secret_id,
        OTHER_POLICY,
        PhysicalResourceId=certificate_id,
        OldResourceProperties={Property.POLICY_NAME: POLICY, Property.SECRET_ID: secret_id},
    )

    updated = handle(event, clients, sleep=_no_sleep)

    attached = clients.iot.list_attached_policies(target=created["Data"][Attribute.CERTIFICATE_ARN])["policies"]
    assert updated == created
    assert [policy["policyName"] for policy in attached] == [OTHER_POLICY]


def test_update_with_a_new_secret_creates_a_new_certificate(clients: Clients) -> None:
    old_secret = _secret(clients, "old")
    new_secret = _secret(clients, "new")
    created = _create(clients, old_secret)
    event = _event(
        "Update",
        new_secret,
        PhysicalResourceId=created["PhysicalResourceId"],
        OldResourceProperties={Property.POLICY_NAME: POLICY, Property.SECRET_ID: old_secret},
    )

    updated = handle(event, clients, sleep=_no_sleep)

    stored = json.loads(clients.secretsmanager.get_secret_value(SecretId=new_secret)["SecretString"])
    assert updated["PhysicalResourceId"] != created["PhysicalResourceId"]
    assert stored[SecretKey.CERTIFICATE_ARN] == updated["Data"][Attribute.CERTIFICATE_ARN]


@dataclass
class _ConflictingIot:
    """The moto IoT client, except that DeleteCertificate reports a conflict the first ``conflicts`` times."""

    inner: Any
    conflicts: int
    delete_calls: int = 0

    def delete_certificate(self, **kwargs: Any) -> Any:
        self.delete_calls += 1
        if self.delete_calls <= self.conflicts:
            error = {"Error": {"Code": "DeleteConflictException", "Message": "things still attached"}}
            raise ClientError(error, "DeleteCertificate")
        return self.inner.delete_certificate(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_delete_retries_while_detachments_propagate(clients: Clients) -> None:
    certificate_id = _create(clients, _secret(clients))["PhysicalResourceId"]
    slow = _ConflictingIot(clients.iot, conflicts=2)
    sleeps: list[float] = []

    handle(
        _event("Delete", "unused", PhysicalResourceId=certificate_id),
        Clients(iot=slow, secretsmanager=clients.secretsmanager),
        sleep=sleeps.append,
    )

    assert slow.delete_calls == 3
    assert len(sleeps) == 2
    assert clients.iot.list_certificates()["certificates"] == []


def test_delete_gives_up_after_the_last_attempt(clients: Clients) -> None:
    certificate_id = _create(clients, _secret(clients))["PhysicalResourceId"]
    stuck = _ConflictingIot(clients.iot, conflicts=DELETE_ATTEMPTS)

    with pytest.raises(CertificateStillInUseError):
        handle(
            _event("Delete", "unused", PhysicalResourceId=certificate_id),
            Clients(iot=stuck, secretsmanager=clients.secretsmanager),
            sleep=_no_sleep,
        )


def test_create_without_a_policy_name_is_refused(clients: Clients) -> None:
    event = {"RequestType": "Create", "ResourceProperties": {Property.SECRET_ID: "x"}}

    with pytest.raises(InvalidPropertiesError, match="PolicyName"):
        handle(event, clients, sleep=_no_sleep)


@dataclass(frozen=True)
class _Context:
    function_name: str = "bridge-certificate"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:eu-central-1:123456789012:function:bridge-certificate"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def test_handler_entry_point_creates_the_certificate(clients: Clients) -> None:
    handler.clients.cache_clear()
    secret_id = _secret(clients)

    response = handler.on_event(_event("Create", secret_id), _Context())  # type: ignore[arg-type]

    handler.clients.cache_clear()
    assert clients.iot.describe_certificate(certificateId=response["PhysicalResourceId"])["certificateDescription"]
