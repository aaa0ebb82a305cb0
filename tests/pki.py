"""A tiny in-process PKI for tests (``cryptography``; the interop tests use strongSwan's ``pki``).

>>> pki = TestPki(tmp_path, "rsa"); west = pki.host("west.sw-lab")
>>> west.cert, west.key  # PEM files; west.dn is the subject as a strongSwan DN string
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
NOW = dt.datetime.now(dt.UTC)

# generated once per process: RSA key generation is slow
_KEYS: dict[tuple[str, int], Key] = {}


def make_key(kind: str, n: int = 0) -> Key:
    """The ``n``-th cached key of ``kind`` ("rsa", "ecdsa" = P-256, "ecdsa384", "ecdsa521")."""
    if (kind, n) not in _KEYS:
        if kind == "rsa":
            _KEYS[kind, n] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            curve = {"ecdsa": ec.SECP256R1(), "ecdsa384": ec.SECP384R1(), "ecdsa521": ec.SECP521R1()}[kind]
            _KEYS[kind, n] = ec.generate_private_key(curve)
    return _KEYS[kind, n]


def name(cn: str, org: str = "snakeswan") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    dn: str
    certificate: x509.Certificate
    private_key: Key


def _san(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        pass
    return x509.RFC822Name(entry) if "@" in entry else x509.DNSName(entry)


def build_cert(
    subject: x509.Name,
    key: Key,
    issuer: x509.Name,
    issuer_key: Key,
    *,
    ca: bool = False,
    san: list[str] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    key_usage: bool = True,
    basic_constraints: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([_san(s) for s in san]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class TestPki:
    """A CA (key kind ``kind``) in ``directory``, issuing host certificates; PEM files."""

    __test__ = False  # not a pytest class

    def __init__(
        self, directory: Path, kind: str = "rsa", *, cn: str = "snakeswan test CA", n: int = 0
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.ca_key = make_key(kind, 100 + n)
        self.ca_name = name(cn)
        self.ca_cert = build_cert(self.ca_name, self.ca_key, self.ca_name, self.ca_key, ca=True)
        self.ca_path = self.dir / f"ca-{n}.crt"
        self.ca_path.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self._n = n

    def host(self, cn: str, *, san: list[str] | None = None, key_index: int = 0, **kw: object) -> Issued:
        key = make_key(self.kind, key_index)
        cert = build_cert(name(cn), key, self.ca_name, self.ca_key, san=san or [cn], **kw)  # type: ignore[arg-type]
        tag = f"{cn}-{self._n}-{cert.serial_number % 10**6}"
        cert_path, key_path = self.dir / f"{tag}.crt", self.dir / f"{tag}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        fmt = (
            serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1 / SEC1, as pki writes them
            if self.kind in ("rsa", "ecdsa")
            else serialization.PrivateFormat.PKCS8
        )
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
        return Issued(cert_path, key_path, f"C=CH, O=snakeswan, CN={cn}", cert, key)


def write_pem(path: Path, obj: x509.Certificate | x509.CertificateRevocationList) -> Path:
    path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    return path


def intermediate(pki: TestPki, cn: str = "snakeswan intermediate CA") -> TestPki:
    """A CA issued by ``pki``'s CA, able to issue hosts itself (its ``ca_path`` is its certificate)."""
    sub = TestPki.__new__(TestPki)
    sub.dir, sub.kind, sub._n = pki.dir, pki.kind, pki._n + 50
    sub.ca_key = make_key(pki.kind, 150 + pki._n)
    sub.ca_name = name(cn)
    sub.ca_cert = build_cert(sub.ca_name, sub.ca_key, pki.ca_name, pki.ca_key, ca=True)
    sub.ca_path = write_pem(pki.dir / f"intermediate-{sub._n}.crt", sub.ca_cert)
    return sub


def crl(
    pki: TestPki,
    revoked: list[x509.Certificate],
    *,
    next_update: dt.datetime | None = None,
    signer: Key | None = None,
    tag: str = "crl",
) -> Path:
    """A CRL of ``pki``'s CA listing ``revoked`` (signed by ``signer``, default the CA's key)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.ca_name)
        .last_update(NOW - dt.timedelta(hours=1))
        .next_update(next_update or NOW + dt.timedelta(days=7))
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(NOW - dt.timedelta(minutes=30))
            .build()
        )
    return write_pem(pki.dir / f"{tag}.crl", builder.sign(signer or pki.ca_key, hashes.SHA256()))
