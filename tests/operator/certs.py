"""A CA and a server certificate signed by it, as the chart makes them (Helm's genCA/genSignedCert)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    ca: Path
    cert: Path
    key: Path


def make_certs(directory: Path, *, ip: str = "127.0.0.1", days: int = 1) -> CertFiles:
    """`ca.crt`, `tls.crt` (for `ip`, signed by the CA) and `tls.key` in `directory`."""
    now = datetime.datetime.now(datetime.UTC)  # noqa: TID251 - certificates are valid from the real now
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deepseek-operator-test-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = CertFiles(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def webhook_env(certs: CertFiles, configuration: str, port: int) -> dict[str, str]:
    """`DSD_*` variables for an operator serving the webhook on 127.0.0.1:`port` with `certs`."""
    return {
        "DSD_WEBHOOK__ENABLED": "true",
        "DSD_WEBHOOK__ADDR": "127.0.0.1",
        "DSD_WEBHOOK__HOST": "127.0.0.1",
        "DSD_WEBHOOK__PORT": str(port),
        "DSD_WEBHOOK__CERT_FILE": str(certs.cert),
        "DSD_WEBHOOK__KEY_FILE": str(certs.key),
        "DSD_WEBHOOK__CA_FILE": str(certs.ca),
        "DSD_WEBHOOK__MANAGED_CONFIGURATION": configuration,
    }
