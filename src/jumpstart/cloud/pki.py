"""The cloud's certificate authority: a fleet CA (ECDSA P-256), the server certificate for the
endpoint, and client certificates whose common name is the thing (spec/cloud.md 5.1).

A certificate's id is the SHA-256 of its DER bytes in hex, as AWS IoT names certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jumpstart.errors import InputError

__all__ = ["CertificateAuthority", "IssuedCertificate", "certificate_id", "common_name"]

CA_VALIDITY = dt.timedelta(days=3650)
# Device certificates live as long as the product; AWS issues them for decades too.
LEAF_VALIDITY = dt.timedelta(days=3650)
CA_NAME = "jumpstart fleet CA"


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    key_pem: bytes
    cert_pem: bytes
    certificate_id: str


def certificate_id(cert: x509.Certificate | bytes) -> str:
    """SHA-256 of the DER encoding, hex: the id the registry and AWS use."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise InputError("certificate has no common name")
    return str(names[0].value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateAuthority:
    """A CA key and certificate that issue server and client certificates."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert

    @classmethod
    def create(cls, name: str = CA_NAME) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> CertificateAuthority:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise InputError("the CA key is not an EC key")
        return cls(key, x509.load_pem_x509_certificate(cert_pem))

    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        name: str,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
        validity: dt.timedelta = LEAF_VALIDITY,
    ) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return IssuedCertificate(
            _key_pem(key), cert.public_bytes(serialization.Encoding.PEM), certificate_id(cert)
        )

    def issue_server(self, hostnames: list[str]) -> IssuedCertificate:
        """A serverAuth certificate with the hostnames as SANs (awscrt verifies them)."""
        sans: list[x509.GeneralName] = []
        for host in hostnames:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(hostnames[0], ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def issue_client(self, name: str, validity: dt.timedelta = LEAF_VALIDITY) -> IssuedCertificate:
        """A clientAuth certificate whose common name is the thing or client name."""
        return self._issue(name, ExtendedKeyUsageOID.CLIENT_AUTH, [], validity)

    def crl_pem(self, revoked: list[x509.Certificate]) -> bytes:
        """A CRL listing ``revoked`` (for brokers that check revocation themselves)."""
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=30))
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(now - dt.timedelta(minutes=5))
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)
