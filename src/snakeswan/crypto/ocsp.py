"""OCSP (RFC 6960) for a peer's certificate: the request, and the checks of the response.

Pure functions over ``cryptography.x509.ocsp``: the nonce and the time are arguments, nothing is
fetched here (the daemon POSTs the request, ``io/ocsp.py``). A response is believed only when

- its responseStatus is ``successful`` and it holds a SingleResponse for exactly our certificate
  (serial number, issuer name hash and issuer key hash, in the response's own hash algorithm);
- it is signed by the certificate's issuer, or by a delegated responder (RFC 6960 4.2.2.2): a
  certificate in the response, named by the ResponderID, issued directly by that issuer, with
  extendedKeyUsage id-kp-OCSPSigning, valid at the time;
- a nonce in it equals the one we sent (a response without a nonce is accepted: responders that
  pre-sign answers leave it out, RFC 6960 4.4.1, as strongSwan accepts);
- thisUpdate is not in the future and nextUpdate, when present, not in the past (``MAX_SKEW`` of
  leeway); without nextUpdate the answer must be at most ``MAX_AGE`` old (and is never cached).

Anything else raises :class:`OcspError` (a :class:`~snakeswan.crypto.certs.CertError`) saying which
check failed; a believed answer is an :class:`OcspStatus` (good, revoked or unknown).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, SignatureAlgorithmOID

from snakeswan.crypto.certs import CertError

__all__ = [
    "MAX_AGE",
    "MAX_SKEW",
    "OcspError",
    "OcspRequest",
    "OcspStatus",
    "aia_urls",
    "build_request",
    "check_response",
]

MAX_SKEW = dt.timedelta(minutes=5)  # clock difference tolerated against thisUpdate/nextUpdate
MAX_AGE = dt.timedelta(minutes=5)  # how old an answer without nextUpdate may be
Status = Literal["good", "revoked", "unknown"]


class OcspError(CertError):
    """An OCSP response that cannot be believed (or none could be parsed)."""


@dataclass(frozen=True, slots=True)
class OcspRequest:
    """A DER OCSPRequest for one certificate and the nonce it carries."""

    der: bytes
    nonce: bytes | None
    serial: int


@dataclass(frozen=True, slots=True)
class OcspStatus:
    """A believed answer for one certificate."""

    status: Status
    this_update: dt.datetime
    next_update: dt.datetime | None
    revoked_at: dt.datetime | None = None
    reason: str | None = None  # the CRLReason of a revocation, when the responder gave one
    responder: str = ""

    def describe(self) -> str:
        if self.status == "revoked":
            why = f", {self.reason}" if self.reason else ""
            return f"revoked at {self.revoked_at}{why} (OCSP, {self.responder})"
        return f"{self.status} (OCSP, {self.responder}, thisUpdate {self.this_update})"


def aia_urls(cert: x509.Certificate) -> tuple[str, ...]:
    """The http:// OCSP responder URLs of the certificate's authorityInfoAccess."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return tuple(
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
        and d.access_location.value.lower().startswith("http://")
    )


def build_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None) -> OcspRequest:
    """An OCSPRequest for ``cert`` (CertID with SHA-1, as RFC 5019 and every responder expect)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    der = builder.build().public_bytes(serialization.Encoding.DER)
    return OcspRequest(der, nonce, cert.serial_number)


def _key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's contents (what issuerKeyHash and byKey hash)."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    raise OcspError(f"unsupported issuer key type {type(key).__name__}")


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def _ours(single: ocsp.OCSPSingleResponse, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The SingleResponse's CertID is ``cert``'s: serial, issuer name hash and key hash."""
    alg = single.hash_algorithm
    return (
        single.serial_number == cert.serial_number
        and single.issuer_name_hash == _digest(alg, issuer.subject.public_bytes())
        and single.issuer_key_hash == _digest(alg, _key_bits(issuer))
    )


def _names(resp: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    """The ResponderID (byName or byKey) names ``cert``."""
    if resp.responder_name is not None:
        return resp.responder_name == cert.subject
    return resp.responder_key_hash == _digest(hashes.SHA1(), _key_bits(cert))


def _signer(resp: ocsp.OCSPResponse, issuer: x509.Certificate, when: dt.datetime) -> x509.Certificate:
    """The issuer itself, or a delegated responder it authorised (RFC 6960 4.2.2.2)."""
    if _names(resp, issuer):
        return issuer
    for cert in resp.certificates:
        if not _names(resp, cert):
            continue
        who = cert.subject.rfc4514_string()
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise OcspError(f'OCSP responder "{who}" is not certified by the issuer') from None
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (x509.ExtensionNotFound, ValueError):
            eku = None
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise OcspError(f'OCSP responder "{who}" lacks extendedKeyUsage id-kp-OCSPSigning')
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise OcspError(f'OCSP responder certificate "{who}" is not valid now')
        return cert
    raise OcspError("OCSP response is signed neither by the issuer nor by a responder it authorised")


def _verify_signature(resp: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    algorithm = resp.signature_hash_algorithm
    if algorithm is None:
        raise OcspError("OCSP response signature algorithm has no hash")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
            if resp.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                pad = padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO)
            key.verify(resp.signature, resp.tbs_response_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            raise OcspError(f"unsupported OCSP signer key type {type(key).__name__}")
    except InvalidSignature:
        raise OcspError("OCSP response signature does not verify") from None


def _check_nonce(resp: ocsp.OCSPResponse, nonce: bytes | None) -> None:
    try:
        theirs = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return  # optional (RFC 6960 4.4.1): pre-signed answers carry none
    except ValueError as exc:
        raise OcspError(f"OCSP response has a malformed nonce: {exc}") from None
    if nonce is None or theirs != nonce:
        raise OcspError("OCSP response nonce does not match the request's (a replayed answer?)")


def _check_times(single: ocsp.OCSPSingleResponse, when: dt.datetime) -> None:
    this, nxt = single.this_update_utc, single.next_update_utc
    if this > when + MAX_SKEW:
        raise OcspError(f"OCSP response thisUpdate {this} is in the future")
    if nxt is not None and nxt < when - MAX_SKEW:
        raise OcspError(f"OCSP response is stale: nextUpdate {nxt} has passed")
    if nxt is None and this < when - MAX_AGE:
        raise OcspError(f"OCSP response without nextUpdate is too old (thisUpdate {this})")


def check_response(
    data: bytes, cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None, when: dt.datetime
) -> OcspStatus:
    """The status of ``cert`` that the DER OCSPResponse ``data`` gives, if it can be believed."""
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as exc:
        raise OcspError(f"not an OCSP response: {exc}") from None
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder answered {resp.response_status.name.lower()}")
    try:
        single = next((s for s in resp.responses if _ours(s, cert, issuer)), None)
        if single is None:
            raise OcspError("OCSP response has no answer for this certificate")
        signer = _signer(resp, issuer, when)
        _verify_signature(resp, signer)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise OcspError(f"malformed OCSP response: {exc}") from None
    _check_nonce(resp, nonce)
    _check_times(single, when)
    status = single.certificate_status
    text: Status = (
        "good"
        if status == ocsp.OCSPCertStatus.GOOD
        else "revoked"
        if status == ocsp.OCSPCertStatus.REVOKED
        else "unknown"
    )
    reason = single.revocation_reason
    return OcspStatus(
        text,
        single.this_update_utc,
        single.next_update_utc,
        single.revocation_time_utc,
        reason.name if reason is not None else None,
        signer.subject.rfc4514_string(),
    )
