"""OCSP responses for tests, built with ``cryptography`` (the namespace test uses ``openssl ocsp``)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.pki import NOW, Key, build_cert, make_key, name


def responder_cert(
    issuer_name: x509.Name, issuer_key: Key, *, ocsp_signing: bool = True, n: int = 30
) -> tuple[x509.Certificate, Key]:
    """A delegated OCSP responder certificate issued by ``issuer_key`` (with id-kp-OCSPSigning)."""
    key = make_key("ecdsa", n)
    cert = build_cert(name("snakeswan OCSP responder"), key, issuer_name, issuer_key)
    if ocsp_signing:  # rebuild with the EKU (build_cert has no parameter for it)
        cert = (
            x509.CertificateBuilder()
            .subject_name(cert.subject)
            .issuer_name(cert.issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(cert.not_valid_before_utc)
            .not_valid_after(cert.not_valid_after_utc)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .sign(issuer_key, hashes.SHA256())
        )
    return cert, key


def response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    signer_key: Key,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    nonce: bytes | None = None,
    responder: x509.Certificate | None = None,
    this_update: dt.datetime | None = None,
    next_update: dt.datetime | bool | None = True,
    by_name: bool = False,
    send_responder: bool = True,
) -> bytes:
    """A DER OCSPResponse for ``cert``, signed by ``signer_key`` as ``responder`` (default: the
    issuer); ``next_update=True`` means an hour after thisUpdate, None none at all."""
    this = this_update or NOW - dt.timedelta(minutes=1)
    nxt = this + dt.timedelta(hours=1) if next_update is True else next_update or None
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert,
        issuer,
        hashes.SHA1(),
        status,
        this,
        nxt,
        NOW - dt.timedelta(days=1) if revoked else None,
        x509.ReasonFlags.key_compromise if revoked else None,
    )
    who = responder or issuer
    builder = builder.responder_id(
        ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH, who
    )
    if responder is not None and send_responder:
        builder = builder.certificates([responder])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def index_line(cert: x509.Certificate, revoked: bool) -> str:
    """One line of an ``openssl ca`` index: status, expiry, revocation, serial, file, subject."""
    fmt = "%y%m%d%H%M%SZ"
    when = (
        (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime(fmt) + ",keyCompromise" if revoked else ""
    )
    subject = "/" + "/".join(reversed(cert.subject.rfc4514_string().split(",")))
    serial = format(cert.serial_number, "X")
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    return "\t".join(
        ["R" if revoked else "V", cert.not_valid_after_utc.strftime(fmt), when, serial, "unknown", subject]
    )
