"""Names shared by the custom resource and the CDK construct that declares it (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lambdas.bridge_certificate.exceptions import InvalidPropertiesError


class Property(StrEnum):
    """Properties of the custom resource."""

    POLICY_NAME = "PolicyName"
    SECRET_ID = "SecretId"  # noqa: S105 - the property name, not a secret


class Attribute(StrEnum):
    """Attributes the custom resource returns (``Fn::GetAtt``)."""

    CERTIFICATE_ARN = "CertificateArn"
    CERTIFICATE_ID = "CertificateId"


class SecretKey(StrEnum):
    """Keys of the JSON document stored in the certificate's secret."""

    CERTIFICATE = "certificate"
    PRIVATE_KEY = "privateKey"
    CERTIFICATE_ARN = "certificateArn"


@dataclass(frozen=True, slots=True)
class CertificateProperties:
    """What the certificate needs: the IoT policy to attach and the secret that receives the private key."""

    policy_name: str
    secret_id: str

    @classmethod
    def from_resource_properties(cls, properties: Mapping[str, Any]) -> CertificateProperties:
        missing = [name for name in Property if not isinstance(properties.get(name), str) or not properties[name]]
        if missing:
            raise InvalidPropertiesError(f"missing resource properties: {', '.join(missing)}")
        return cls(policy_name=properties[Property.POLICY_NAME], secret_id=properties[Property.SECRET_ID])
