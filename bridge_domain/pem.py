"""PEM parsing of the bridge certificate and its private key."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def load_certificate(text: str) -> x509.Certificate:
    """Parse a PEM certificate; raise ValueError (never echoing the input) when it is not one."""
    try:
        return x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None


def load_private_key(text: str) -> PrivateKeyTypes:
    """Parse an unencrypted PEM private key; the error never contains the key."""
    try:
        return serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None


def key_matches_certificate(private_key_pem: str, certificate_pem: str) -> bool:
    """True when the private key's public half is the certificate's public key."""
    key_public = load_private_key(private_key_pem).public_key()
    cert_public = load_certificate(certificate_pem).public_key()
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    return key_public.public_bytes(serialization.Encoding.DER, fmt) == cert_public.public_bytes(
        serialization.Encoding.DER, fmt
    )
