"""Errors of the bridge-certificate custom resource."""


class BridgeCertificateError(Exception):
    """Base of every error the bridge-certificate custom resource raises."""


class InvalidPropertiesError(BridgeCertificateError):
    """The custom resource's properties lack the policy name or the secret id."""


class CertificateStillInUseError(BridgeCertificateError):
    """The certificate kept a thing or a policy attached after every retry, so it could not be deleted."""
