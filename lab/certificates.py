"""The lab's certificate authorities and server certificates, made at run time (never committed).

One CA per lab (the DC simulator's HTTPS listeners, the Samba forest's LDAPS), each leaf
carrying its DNS names and addresses as subjectAltNames.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class IssuedCertificate:
    """The files a TLS server needs, and the CA its clients must trust."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write with the given permissions from the start (private keys are never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _new_key(kind: KeyKind) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: PrivateKey) -> bytes:
    # Samba (GnuTLS) is given RSA keys in the traditional PEM form it documents.
    fmt = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if isinstance(key, rsa.RSAPrivateKey)
        else serialization.PrivateFormat.PKCS8
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def _name(organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(names: list[str]) -> x509.SubjectAlternativeName:
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(sans)


def _leaf(
    organization: str, names: list[str], issuer: x509.Name, issuer_key: PrivateKey, key: PrivateKey
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(organization, names[0]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(_subject_alt_names(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> Path:
    cert_file = directory / f"{stem}.pem"
    write_file(directory / f"{stem}.key", _key_pem(key), 0o600)
    write_file(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_file


class LabCertificateAuthority:
    """A CA in `directory` (reused when already there) that issues server certificates."""

    def __init__(
        self,
        directory: Path,
        name: str,
        *,
        key_kind: KeyKind = "ec",
        organization: str = "AD1411 lab",
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.organization = organization
        self.key_kind: KeyKind = key_kind
        self.ca_file = directory / "ca.pem"
        key_file = directory / "ca.key"
        if self.ca_file.exists() and key_file.exists():
            self._cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
            loaded = serialization.load_pem_private_key(key_file.read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise ValueError(f"{key_file}: not an EC or RSA key")
            self._key: PrivateKey = loaded
            return
        self._key = _new_key(key_kind)
        now = datetime.datetime.now(datetime.UTC)
        subject = _name(organization, f"{name} CA")
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
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
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        _write_pair(directory, "ca", self._cert, self._key)

    def issue(self, names: list[str], directory: Path, stem: str = "server") -> IssuedCertificate:
        """A certificate for `names` (DNS names and addresses; the first is the subject)."""
        directory.mkdir(parents=True, exist_ok=True)
        key = _new_key(self.key_kind)
        cert = _leaf(self.organization, names, self._cert.subject, self._key, key)
        cert_file = _write_pair(directory, stem, cert, key)
        return IssuedCertificate(self.ca_file, cert_file, directory / f"{stem}.key")


def issue_self_signed(names: list[str], directory: Path, stem: str) -> IssuedCertificate:
    """A certificate signed by its own key: what an unconfigured listener serves."""
    directory.mkdir(parents=True, exist_ok=True)
    key = _new_key("ec")
    cert = _leaf("AD1411 lab", names, _name("AD1411 lab", names[0]), key, key)
    cert_file = _write_pair(directory, stem, cert, key)
    return IssuedCertificate(cert_file, cert_file, directory / f"{stem}.key")
