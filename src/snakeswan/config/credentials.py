"""Certificates and private keys: loaded from files by the config loader, used by the IKE engine.

The loader reads every file a configuration names (``local.certs``, ``remote.certs``,
``remote.cacerts``, ``local.cacerts`` and the private keys of ``[secrets.private<suffix>]``) once,
into one frozen :class:`Credentials` held by :class:`~snakeswan.config.model.Config`. The engine
never opens a file; a bad file is a :class:`ConfigError` naming the file and the problem.

Accepted formats, as strongSwan's ``pki`` writes them: certificates in PEM or DER; private keys in
PEM (PKCS#1 ``RSA PRIVATE KEY``, SEC1 ``EC PRIVATE KEY``, PKCS#8 ``PRIVATE KEY`` and
``ENCRYPTED PRIVATE KEY`` with the section's ``secret`` as passphrase) or DER (PKCS#1, SEC1 or
PKCS#8). RSA and ECDSA on P-256, P-384, P-521 only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from snakeswan.config.identity import MATCH_PERFECT, Identity
from snakeswan.crypto.certs import CertError, parse_certificate
from snakeswan.crypto.signatures import PrivateKeyType, PublicKeyType, auth_method_for, key_description
from snakeswan.errors import ConfigError, CryptoError
from snakeswan.wire.enums import IdType

__all__ = [
    "Credentials",
    "PrivateKey",
    "cert_contains",
    "load_certificate",
    "load_private_key",
    "load_public_key",
    "public_key_of",
    "spki_der",
    "subject_identity",
]


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """A private key and the file it came from; its repr shows the type and the file only."""

    key: PrivateKeyType = field(repr=False, compare=False)
    source: str = ""

    def __repr__(self) -> str:
        return f"PrivateKey({key_description(self.key)}, {self.source!r})"

    def public_der(self) -> bytes:
        return _spki(self.key.public_key())


def _spki(key: PublicKeyType) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_of(cert: x509.Certificate) -> PublicKeyType:
    """The certificate's RSA or ECDSA public key; :class:`CertError` for any other kind."""
    try:
        key = cert.public_key()
    except ValueError as exc:
        raise CertError(f"unreadable public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CertError(f"unsupported public key type {type(key).__name__}")
    return key


@dataclass(frozen=True, slots=True)
class Credentials:
    """Loaded certificates (by file name as written in the configuration) and private keys."""

    certs: tuple[tuple[str, x509.Certificate], ...] = ()
    keys: tuple[PrivateKey, ...] = ()
    crls: tuple[tuple[str, x509.CertificateRevocationList], ...] = ()
    # [authorities.<name>]: a CA certificate and the OCSP responders for what it issued
    authorities: tuple[tuple[x509.Certificate, tuple[str, ...]], ...] = ()

    def ocsp_uris_for(self, issuer: x509.Certificate) -> tuple[str, ...]:
        """The OCSP responder URLs configured for certificates ``issuer`` issued."""
        return tuple(url for ca, urls in self.authorities if ca == issuer for url in urls)

    pubkeys: tuple[tuple[str, PublicKeyType], ...] = ()  # raw public keys (``pubkeys`` files)

    def pubkey(self, name: str) -> PublicKeyType:
        """The raw public key loaded for file name ``name``; ``KeyError`` if none was."""
        for written, key in self.pubkeys:
            if written == name:
                return key
        raise KeyError(name)

    def key_for_public(self, public: PublicKeyType) -> PrivateKey | None:
        """The private key of ``public``, or None."""
        wanted = _spki(public)
        return next((k for k in self.keys if k.public_der() == wanted), None)

    def crl(self, name: str) -> x509.CertificateRevocationList:
        """The CRL loaded for file name ``name``; ``KeyError`` if none was."""
        for written, crl in self.crls:
            if written == name:
                return crl
        raise KeyError(name)

    def cert(self, name: str) -> x509.Certificate:
        """The certificate loaded for file name ``name``; ``KeyError`` if none was."""
        for written, cert in self.certs:
            if written == name:
                return cert
        raise KeyError(name)

    def key_for(self, cert: x509.Certificate) -> PrivateKey | None:
        """The private key whose public key is ``cert``'s, or None."""
        try:
            wanted = _spki(public_key_of(cert))
        except CertError:
            return None
        return next((k for k in self.keys if k.public_der() == wanted), None)


def load_certificate(data: bytes, source: str) -> x509.Certificate:
    """A certificate from a file's bytes (PEM or DER); ``ConfigError`` naming ``source``."""
    try:
        cert = parse_certificate(data)
        public_key_of(cert)
    except CertError as exc:
        raise ConfigError(
            f"expected an X.509 certificate (PEM or DER) with an RSA or ECDSA key: {exc.what}", source
        ) from None
    return cert


def load_public_key(data: bytes, source: str) -> PublicKeyType:
    """A raw public key from a file's bytes: PEM (``PUBLIC KEY``, ``RSA PUBLIC KEY``) or DER
    (SubjectPublicKeyInfo); ``ConfigError`` naming ``source``."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            "expected a PEM or DER public key (SubjectPublicKeyInfo or PKCS#1): "
            f"unreadable ({type(exc).__name__})",
            source,
        ) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(f"expected an RSA or ECDSA public key, got {type(key).__name__}", source)
    return key


def spki_der(key: PublicKeyType) -> bytes:
    """The SubjectPublicKeyInfo (DER) of ``key``."""
    return _spki(key)


def load_private_key(data: bytes, source: str, passphrase: bytes | None = None) -> PrivateKey:
    """An RSA or ECDSA private key from a file's bytes; ``ConfigError`` naming ``source``.

    The error text never contains key material."""
    load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        key = load(data, passphrase)
    except TypeError:
        what = (
            "the key is encrypted: a passphrase (secret) is needed"
            if passphrase is None
            else ("the key is not encrypted: remove the secret")
        )
        raise ConfigError(what, source) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        reason = "wrong passphrase or " if passphrase else ""
        raise ConfigError(
            "expected a PEM or DER private key (PKCS#1, SEC1 or PKCS#8): "
            f"{reason}unreadable ({type(exc).__name__})",
            source,
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"expected an RSA or ECDSA private key, got {type(key).__name__}", source)
    try:
        auth_method_for(key)
    except CryptoError as exc:
        raise ConfigError(str(exc), source) from None
    return PrivateKey(key, source)


def subject_identity(cert: x509.Certificate) -> Identity:
    """The ``ID_DER_ASN1_DN`` identity of the certificate's subject (strongSwan's default ID)."""
    return Identity(IdType.DER_ASN1_DN, cert.subject.public_bytes())


def _alt_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (x509.ExtensionNotFound, ValueError):
        return []
    return list(ext.value)


def cert_contains(cert: x509.Certificate, identity: Identity) -> bool:
    """Whether ``identity`` is the certificate's subject DN or one of its subjectAltNames
    (dNSName for FQDN, rfc822Name for USER_FQDN, iPAddress for addresses; case-insensitive names)."""
    kind = identity.id_type
    if kind == IdType.DER_ASN1_DN:
        return subject_identity(cert).matches(identity) == MATCH_PERFECT
    names = _alt_names(cert)
    if kind in (IdType.FQDN, IdType.USER_FQDN):
        wanted = identity.data.decode("utf-8", errors="replace").lower()
        gn_type = x509.DNSName if kind == IdType.FQDN else x509.RFC822Name
        return any(isinstance(n, gn_type) and n.value.lower() == wanted for n in names)
    if kind in (IdType.IPV4_ADDR, IdType.IPV6_ADDR) and len(identity.data) in (4, 16):
        address = ipaddress.ip_address(identity.data)
        return any(isinstance(n, x509.IPAddress) and n.value == address for n in names)
    return False
