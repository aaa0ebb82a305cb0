"""X.509 certificates: parsing (PEM or DER) and path validation against trusted CA certificates.

Pure functions over ``cryptography``; the time of validation is an argument. Validation is the
part of RFC 5280 section 6 that IKE peers rely on (as strongSwan's ``cert_validator`` chain):

- the end-entity certificate and each issuer are within their validity period at ``when``;
- each certificate is signed by its issuer (name chaining and signature), up to a trusted CA;
- every issuer is a CA (basicConstraints cA = TRUE; keyUsage keyCertSign when the extension is
  present; pathLenConstraint honoured);
- the end-entity certificate may sign (keyUsage digitalSignature or nonRepudiation when present,
  as strongSwan's RFC 4945 check).

Revocation (:func:`check_revocation`): against the CRLs the user configured (files; nothing is
fetched): each certificate of the path whose issuer has a CRL must not be on it, and that CRL must
be signed by the issuer and current. Failures raise :class:`CertError` with ``untrusted`` True
when no trusted CA issued the chain (INVALID-CERT-AUTHORITY) and False when a certificate is bad
(INVALID-CERTIFICATE).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from snakeswan.errors import CryptoError

__all__ = ["MAX_PATH", "CertError", "check_revocation", "parse_certificate", "parse_crl", "validate_chain"]

MAX_PATH = 5  # intermediate CA certificates followed at most


class CertError(CryptoError):
    """A certificate or a path is not acceptable; ``untrusted``: no trusted CA issued it."""

    def __init__(self, what: str, *, untrusted: bool = False) -> None:
        self.what = what
        self.untrusted = untrusted
        super().__init__(what)


def parse_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER or PEM bytes; :class:`CertError` if it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertError(f"not an X.509 certificate: {exc}") from None


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from DER or PEM bytes; :class:`CertError` if it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CertError(f"not an X.509 CRL: {exc}") from None


def check_revocation(
    path: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList], when: datetime
) -> None:
    """Each certificate of ``path`` (end entity first, trust anchor last) whose issuer has a CRL in
    ``crls`` must not be revoked; a CRL of that issuer with a bad signature or past its nextUpdate
    is an error too (a configured check is never skipped)."""
    for cert, issuer in itertools.pairwise(path):
        for crl in (c for c in crls if c.issuer == issuer.subject):
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                raise CertError(f'CRL of "{_name(issuer)}" is not signed by it')
            next_update = crl.next_update_utc
            if next_update is not None and when > next_update:
                raise CertError(f'CRL of "{_name(issuer)}" expired at {next_update}')
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None:
                raise CertError(
                    f'certificate "{_name(cert)}" was revoked at {revoked.revocation_date_utc} '
                    f'(CRL of "{_name(issuer)}")'
                )


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "<empty subject>"


def _check_validity(cert: x509.Certificate, when: datetime) -> None:
    if when < cert.not_valid_before_utc:
        raise CertError(f'certificate "{_name(cert)}" is not valid before {cert.not_valid_before_utc}')
    if when > cert.not_valid_after_utc:
        raise CertError(f'certificate "{_name(cert)}" expired at {cert.not_valid_after_utc}')


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # a malformed extension
        raise CertError(f'certificate "{_name(cert)}" has a malformed extension: {exc}') from None


def _check_ca(ca: x509.Certificate, below: int) -> None:
    """``ca`` may issue certificates with ``below`` CA certificates under it on this path."""
    bc = _extension(ca, x509.BasicConstraints)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise CertError(f'"{_name(ca)}" is not a CA certificate (basicConstraints cA)')
    if bc.path_length is not None and below > bc.path_length:
        raise CertError(f'path length constraint of "{_name(ca)}" exceeded')
    ku = _extension(ca, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
        raise CertError(f'CA certificate "{_name(ca)}" lacks keyUsage keyCertSign')


def _check_end_entity(cert: x509.Certificate) -> None:
    ku = _extension(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not (ku.digital_signature or ku.content_commitment):
        raise CertError(f'certificate "{_name(cert)}" lacks keyUsage digitalSignature (RFC 4945)')


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name chaining and the issuer's signature over ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def validate_chain(
    end_entity: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    when: datetime,
) -> list[x509.Certificate]:
    """The path from ``end_entity`` to a ``trusted`` CA (both ends included), or :class:`CertError`.

    ``intermediates`` are untrusted CA certificates the peer sent; ``when`` is an aware datetime.
    A trusted certificate that is the end entity itself (a pinned peer certificate) is accepted.
    """
    _check_validity(end_entity, when)
    _check_end_entity(end_entity)
    if end_entity in trusted:
        return [end_entity]
    path = [end_entity]
    current = end_entity
    for depth in range(MAX_PATH + 1):
        anchor = next((ca for ca in trusted if ca.subject == current.issuer), None)
        if anchor is not None:
            if not _issued_by(current, anchor):
                raise CertError(
                    f'certificate "{_name(current)}" is not signed by trusted CA "{_name(anchor)}"'
                )
            _check_ca(anchor, depth)
            _check_validity(anchor, when)
            return [*path, anchor]
        if depth == MAX_PATH:
            break
        nxt = next((c for c in intermediates if c.subject == current.issuer and c not in path), None)
        if nxt is None:
            break
        if not _issued_by(current, nxt):
            raise CertError(f'certificate "{_name(current)}" is not signed by "{_name(nxt)}"')
        _check_ca(nxt, depth)
        _check_validity(nxt, when)
        path.append(nxt)
        current = nxt
    raise CertError(
        f'no trusted CA certificate for issuer "{current.issuer.rfc4514_string()}"', untrusted=True
    )
