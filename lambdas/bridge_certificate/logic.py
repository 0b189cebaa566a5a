"""Create, update and delete the bridge certificate for the CDK custom-resource Provider framework.

* Create: ``CreateKeysAndCertificate`` (active), the PEM and the private key written straight into the Secrets
  Manager secret (never returned to CloudFormation, never logged), the IoT policy attached.
* Update: a new secret means a new certificate (a new physical id, so CloudFormation deletes the old one
  afterwards); a new policy name is attached in place and the old one detached.
* Delete: things detached, policies detached, the certificate deactivated and deleted. AWS IoT propagates
  detachments asynchronously, so the deletion is retried for a while before giving up.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.bridge_certificate.exceptions import CertificateStillInUseError
from lambdas.bridge_certificate.properties import Attribute, CertificateProperties, SecretKey

logger = logging.getLogger(__name__)

CERTIFICATE_ID_RE: Final = re.compile(r"[0-9a-f]{64}")
DELETE_ATTEMPTS: Final = 10
DELETE_RETRY_DELAY_SECS: Final = 3.0
_IN_USE_CODES = frozenset({"DeleteConflictException", "CertificateStateException"})
_NOT_FOUND = "ResourceNotFoundException"


@dataclass(frozen=True, slots=True)
class Clients:
    """The boto3 clients the handler passes in (moto in tests)."""

    iot: Any
    secretsmanager: Any


def handle(event: dict[str, Any], clients: Clients, *, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Dispatch one Provider-framework event and return its response."""
    request = event["RequestType"]
    if request == "Create":
        return create(clients, CertificateProperties.from_resource_properties(event["ResourceProperties"]), sleep=sleep)
    physical_id = str(event["PhysicalResourceId"])
    if request == "Update":
        return update(
            clients,
            physical_id,
            CertificateProperties.from_resource_properties(event["ResourceProperties"]),
            CertificateProperties.from_resource_properties(event["OldResourceProperties"]),
            sleep=sleep,
        )
    delete(clients, physical_id, sleep=sleep)
    return {"PhysicalResourceId": physical_id}


def _response(certificate_id: str, certificate_arn: str) -> dict[str, Any]:
    return {
        "PhysicalResourceId": certificate_id,
        "Data": {Attribute.CERTIFICATE_ARN.value: certificate_arn, Attribute.CERTIFICATE_ID.value: certificate_id},
    }


def create(
    clients: Clients, properties: CertificateProperties, *, sleep: Callable[[float], None] = time.sleep
) -> dict[str, Any]:
    created = clients.iot.create_keys_and_certificate(setAsActive=True)
    certificate_id: str = created["certificateId"]
    certificate_arn: str = created["certificateArn"]
    try:
        document = {
            SecretKey.CERTIFICATE.value: created["certificatePem"],
            SecretKey.PRIVATE_KEY.value: created["keyPair"]["PrivateKey"],
            SecretKey.CERTIFICATE_ARN.value: certificate_arn,
        }
        clients.secretsmanager.put_secret_value(SecretId=properties.secret_id, SecretString=json.dumps(document))
        clients.iot.attach_policy(policyName=properties.policy_name, target=certificate_arn)
    except Exception:
        # The private key exists nowhere else: a certificate whose key was not stored is useless, remove it.
        logger.exception("storing or authorising certificate %s failed; deleting it", certificate_id)
        delete(clients, certificate_id, sleep=sleep)
        raise
    logger.info("created certificate %s with policy %s", certificate_id, properties.policy_name)
    return _response(certificate_id, certificate_arn)


def update(
    clients: Clients,
    physical_id: str,
    properties: CertificateProperties,
    old: CertificateProperties,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    if properties.secret_id != old.secret_id:
        # The old secret keeps the old key; a fresh certificate fills the new one and CloudFormation then sends
        # Delete for the old physical id.
        return create(clients, properties, sleep=sleep)
    certificate_arn = _certificate_arn(clients.iot, physical_id)
    if properties.policy_name != old.policy_name:
        clients.iot.attach_policy(policyName=properties.policy_name, target=certificate_arn)
        _ignore_not_found(
            functools.partial(clients.iot.detach_policy, policyName=old.policy_name, target=certificate_arn)
        )
        logger.info("certificate %s: policy %s replaced by %s", physical_id, old.policy_name, properties.policy_name)
    return _response(physical_id, certificate_arn)


def delete(clients: Clients, physical_id: str, *, sleep: Callable[[float], None]) -> None:
    if CERTIFICATE_ID_RE.fullmatch(physical_id) is None:
        # A Create that failed before a certificate existed leaves a placeholder id: nothing to delete.
        logger.info("no certificate behind physical id %s", physical_id)
        return
    iot = clients.iot
    try:
        certificate_arn = _certificate_arn(iot, physical_id)
    except ClientError as exc:
        if _code(exc) == _NOT_FOUND:
            logger.info("certificate %s is already gone", physical_id)
            return
        raise
    for thing in list(_principal_things(iot, certificate_arn)):
        _ignore_not_found(functools.partial(iot.detach_thing_principal, thingName=thing, principal=certificate_arn))
    for policy in list(_attached_policies(iot, certificate_arn)):
        _ignore_not_found(functools.partial(iot.detach_policy, policyName=policy, target=certificate_arn))
    iot.update_certificate(certificateId=physical_id, newStatus="INACTIVE")
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            iot.delete_certificate(certificateId=physical_id, forceDelete=False)
        except ClientError as exc:
            if _code(exc) == _NOT_FOUND:
                return
            if _code(exc) not in _IN_USE_CODES:
                raise
            if attempt == DELETE_ATTEMPTS:
                raise CertificateStillInUseError(
                    f"certificate {physical_id} still has a thing or policy attached after {attempt} attempts"
                ) from exc
            sleep(DELETE_RETRY_DELAY_SECS)
        else:
            logger.info("deleted certificate %s", physical_id)
            return


def _certificate_arn(iot: Any, certificate_id: str) -> str:
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    return str(description["certificateArn"])


def _principal_things(iot: Any, principal: str) -> Iterator[str]:
    for page in iot.get_paginator("list_principal_things").paginate(principal=principal):
        yield from page.get("things", [])


def _attached_policies(iot: Any, target: str) -> Iterator[str]:
    for page in iot.get_paginator("list_attached_policies").paginate(target=target, recursive=False):
        for policy in page.get("policies", []):
            yield str(policy["policyName"])


def _ignore_not_found(call: Callable[[], object]) -> None:
    try:
        call()
    except ClientError as exc:
        if _code(exc) != _NOT_FOUND:
            raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
