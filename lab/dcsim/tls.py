"""HTTPS for simulated DCs: certificates from the lab CA (lab/certificates.py)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.certificates import IssuedCertificate, LabCertificateAuthority, issue_self_signed


@dataclass(frozen=True)
class ServerTls:
    """Files of one HTTPS listener: the CA a client must trust, and the server's own pair."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def of(cls, issued: IssuedCertificate) -> ServerTls:
        """From issued certificate files."""
        return cls(issued.ca_file, issued.cert_file, issued.key_file)

    def server_context(self) -> ssl.SSLContext:
        """An SSL context serving this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def certificate_der(self) -> bytes:
        """The server certificate, DER encoded (for channel binding)."""
        cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)


def issue_server_tls(tls_dir: Path, hostnames: list[str]) -> ServerTls:
    """Create (or reuse) the lab CA in `tls_dir` and issue a server certificate for `hostnames`."""
    ca = LabCertificateAuthority(tls_dir, "AD1411 lab")
    return ServerTls.of(ca.issue(hostnames, tls_dir, hostnames[0].replace("*", "_")))


def issue_self_signed_tls(tls_dir: Path, hostnames: list[str]) -> ServerTls:
    """A server certificate signed by itself: what an unconfigured WinRM listener serves."""
    stem = hostnames[0].replace("*", "_") + "-selfsigned"
    return ServerTls.of(issue_self_signed(hostnames, tls_dir, stem))
