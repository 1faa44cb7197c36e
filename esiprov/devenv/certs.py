"""Throwaway TLS material for local runs: one CA that issues server and client certificates.

Tests run etcd and Redis with real TLS (client certificates included), so they
need a CA of their own; nothing here is meant for production. EC P-256 keys are
quick to make and every party accepts them: etcd (Go), gRPC and Redis (OpenSSL).
"""
from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: certificates are valid from an hour ago (clock skew) for a day: long enough for any test run
_SKEW, _LIFETIME = datetime.timedelta(hours=1), datetime.timedelta(days=1)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one party: the CA it trusts, its certificate and its private key."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    """The key in a file only its owner can read (Redis and etcd do not care; a habit worth keeping)."""
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class CertificateAuthority:
    """A self-signed CA in ``directory`` (``ca.crt``); ``issue`` adds ``<name>.crt``/``<name>.key``."""

    def __init__(self, directory: Path, name: str = "esiprov throwaway CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._subject = _name(name)
        self.cert_path = self.directory / "ca.crt"
        ca = self._builder(self._subject, self._key.public_key()).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True).add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        self.cert_path.write_bytes(ca.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self._subject)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - _SKEW).not_valid_after(now + _LIFETIME))

    def issue(self, name: str, server: bool = False) -> TlsFiles:
        """A certificate with common name ``name``, signed by this CA.

        A server certificate names 127.0.0.1 and localhost and may also act as a
        client: etcd's gRPC gateway dials its own listener with it.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = self._builder(_name(name), key.public_key()).add_extension(
            x509.ExtendedKeyUsage(usages), critical=False)
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        files = TlsFiles(self.cert_path, self.directory / f"{name}.crt", self.directory / f"{name}.key")
        files.cert.write_bytes(builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        _write_key(key, files.key)
        return files
