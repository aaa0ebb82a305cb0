"""X.509 certificates: parsing (PEM or DER) and path validation against trusted CA certificates.

Pure functions over ``cryptography``; the time of validation is an argument. Paths are built and
checked by ``cryptography.x509.verification`` (RFC 5280 path building: name chaining, signatures,
validity at ``when``, basicConstraints cA and pathLenConstraint, unknown critical extensions
refused) with a policy fit for IPsec rather than the Web PKI, as strongSwan's ``cert_validator``:

- no server name, no extendedKeyUsage and no subjectAltName are required (IKE binds the peer's ID
  to its certificate itself: :func:`~snakeswan.config.credentials.cert_contains`), and no
  authority/subject key identifiers (strongSwan's ``pki`` adds them; other CAs may not);
- every CA certificate has basicConstraints cA = TRUE and, when keyUsage is present, keyCertSign;
- the end-entity certificate may sign (keyUsage digitalSignature or nonRepudiation when present,
  as strongSwan's RFC 4945 check).

What the verifier's policy fixes and we keep: RSA keys of at least 2048 bits, signatures by
RSA (PKCS#1 v1.5 or PSS) or ECDSA with SHA-256/384/512 (no SHA-1, no MD5), positive serial numbers.
When the verifier refuses a path, :func:`_explain` says which certificate and which check.

Revocation (:func:`check_revocation`): against the CRLs the user configured (files; nothing is
fetched): each certificate of the path whose issuer has a CRL must not be on it, and that CRL must
be signed by the issuer and current. OCSP is :mod:`snakeswan.crypto.ocsp`. Failures raise
:class:`CertError` with ``untrusted`` True when no trusted CA issued the chain
(INVALID-CERT-AUTHORITY) and False when a certificate is bad (INVALID-CERTIFICATE).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

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


def _ca_usage_problem(cert: x509.Certificate, ku: x509.KeyUsage | None) -> str | None:
    if ku is not None and not ku.key_cert_sign:
        return f'CA certificate "{_name(cert)}" lacks keyUsage keyCertSign'
    return None


def _ee_usage_problem(cert: x509.Certificate, ku: x509.KeyUsage | None) -> str | None:
    if ku is not None and not (ku.digital_signature or ku.content_commitment):
        return f'certificate "{_name(cert)}" lacks keyUsage digitalSignature (RFC 4945)'
    return None


def _ca_key_usage(policy: Policy, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    """Validator of the CA extension policy (the verifier reports what it raises)."""
    problem = _ca_usage_problem(cert, ku)
    if problem is not None:
        raise ValueError(problem)


def _ee_key_usage(policy: Policy, cert: x509.Certificate, ku: x509.KeyUsage | None) -> None:
    """Validator of the end-entity extension policy."""
    problem = _ee_usage_problem(cert, ku)
    if problem is not None:
        raise ValueError(problem)


def _ipsec_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """(CA policy, end-entity policy): what IKE needs, nothing of the Web PKI's."""
    ca = (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)  # cA checked by the verifier
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
    )
    ee = ExtensionPolicy.permit_all().may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ee_key_usage)
    return ca, ee


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
    if end_entity in trusted:  # pinned: no path to build, its own validity and key usage only
        _check_validity(end_entity, when)
        _explain_extensions(end_entity, ca=False)
        return [end_entity]
    ca_policy, ee_policy = _ipsec_policies()
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(list(trusted)))
            .time(when)
            .max_chain_depth(MAX_PATH)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        return list(verifier.verify(end_entity, list(intermediates)).chain)
    except (VerificationError, ValueError) as exc:
        raise _explain(end_entity, intermediates, trusted, when, str(exc)) from None


def _check_validity(cert: x509.Certificate, when: datetime) -> None:
    if when < cert.not_valid_before_utc:
        raise CertError(f'certificate "{_name(cert)}" is not valid before {cert.not_valid_before_utc}')
    if when > cert.not_valid_after_utc:
        raise CertError(f'certificate "{_name(cert)}" expired at {cert.not_valid_after_utc}')


def _explain_extensions(cert: x509.Certificate, *, ca: bool) -> None:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    except ValueError as exc:  # a malformed extension
        raise CertError(f'certificate "{_name(cert)}" has a malformed extension: {exc}') from None
    if not ca:
        problem = _ee_usage_problem(cert, ku)
        if problem is not None:
            raise CertError(problem)
        return
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        bc = None
    if bc is None or not bc.ca:
        raise CertError(f'"{_name(cert)}" is not a CA certificate (basicConstraints cA)')
    problem = _ca_usage_problem(cert, ku)
    if problem is not None:
        raise CertError(problem)


def _explain(
    cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    when: datetime,
    verdict: str,
) -> CertError:
    """Why the verifier refused (its ``verdict`` is terse): the first certificate, walking up by
    issuer name, that fails a check; the verdict itself when no single check is to blame."""
    seen: list[x509.Certificate] = []
    try:
        _check_validity(cert, when)
        _explain_extensions(cert, ca=False)
        while len(seen) <= MAX_PATH:
            seen.append(cert)
            anchors = [c for c in trusted if c.subject == cert.issuer]
            up = anchors or [c for c in intermediates if c.subject == cert.issuer and c not in seen]
            if not up:
                return CertError(
                    f'no trusted CA certificate for issuer "{cert.issuer.rfc4514_string()}"', untrusted=True
                )
            signer = next((c for c in up if _issued_by(cert, c)), None)
            if signer is None:
                return CertError(f'certificate "{_name(cert)}" is not signed by "{_name(up[0])}"')
            _explain_extensions(signer, ca=True)
            _check_validity(signer, when)
            if signer in trusted:
                break
            cert = signer
    except CertError as exc:
        return exc
    return CertError(f"path rejected: {verdict}", untrusted="no interior errors" in verdict)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name chaining and the issuer's signature over ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
