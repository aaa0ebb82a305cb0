"""OCSP request and response checks (crypto.ocsp), responses built by cryptography."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from snakeswan.crypto.ocsp import OcspError, aia_urls, build_request, check_response
from tests.pki import NOW, build_cert, make_key, name
from tests.pki_ocsp import responder_cert, response

CA_KEY = make_key("ecdsa", 40)
CA = build_cert(name("ocsp CA"), CA_KEY, name("ocsp CA"), CA_KEY, ca=True)
PEER = build_cert(name("peer"), make_key("ecdsa", 41), name("ocsp CA"), CA_KEY)
NONCE = b"n" * 16


def test_request_names_the_certificate_and_carries_the_nonce() -> None:
    req = build_request(PEER, CA, NONCE)
    parsed = ocsp.load_der_ocsp_request(req.der)
    assert parsed.serial_number == PEER.serial_number == req.serial
    assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE
    assert ocsp.load_der_ocsp_request(build_request(PEER, CA, None).der).extensions.__len__() == 0


def test_good_revoked_unknown_signed_by_the_ca() -> None:
    good = check_response(response(PEER, CA, CA_KEY, nonce=NONCE), PEER, CA, NONCE, NOW)
    assert good.status == "good" and good.next_update is not None
    revoked = check_response(
        response(PEER, CA, CA_KEY, status=ocsp.OCSPCertStatus.REVOKED), PEER, CA, NONCE, NOW
    )
    assert revoked.status == "revoked" and revoked.reason == "key_compromise"
    assert "revoked at" in revoked.describe()
    unknown = check_response(
        response(PEER, CA, CA_KEY, status=ocsp.OCSPCertStatus.UNKNOWN), PEER, CA, None, NOW
    )
    assert unknown.status == "unknown"


def test_delegated_responder() -> None:
    rcert, rkey = responder_cert(CA.subject, CA_KEY)
    ok = check_response(response(PEER, CA, rkey, responder=rcert), PEER, CA, None, NOW)
    assert ok.status == "good" and "OCSP responder" in ok.responder
    no_eku, no_eku_key = responder_cert(CA.subject, CA_KEY, ocsp_signing=False, n=31)
    with pytest.raises(OcspError, match="OCSPSigning"):
        check_response(response(PEER, CA, no_eku_key, responder=no_eku), PEER, CA, None, NOW)
    other_key = make_key("ecdsa", 42)
    stranger, stranger_key = responder_cert(name("other CA"), other_key, n=32)
    with pytest.raises(OcspError, match="not certified by the issuer"):
        check_response(response(PEER, CA, stranger_key, responder=stranger), PEER, CA, None, NOW)


def test_wrong_signer() -> None:
    """Named as the CA (by name) but signed by another key; or by a key nobody named."""
    impostor_key = make_key("ecdsa", 44)
    impostor = build_cert(name("ocsp CA"), impostor_key, name("ocsp CA"), impostor_key, ca=True)
    forged = response(PEER, CA, impostor_key, responder=impostor, by_name=True)
    with pytest.raises(OcspError, match="signature does not verify"):
        check_response(forged, PEER, CA, None, NOW)
    with pytest.raises(OcspError, match="neither by the issuer"):
        check_response(
            response(PEER, CA, impostor_key, responder=impostor, send_responder=False), PEER, CA, None, NOW
        )


def test_stale_future_and_nonce() -> None:
    old = NOW - dt.timedelta(days=2)
    with pytest.raises(OcspError, match="stale"):
        check_response(response(PEER, CA, CA_KEY, this_update=old), PEER, CA, None, NOW)
    with pytest.raises(OcspError, match="in the future"):
        check_response(
            response(PEER, CA, CA_KEY, this_update=NOW + dt.timedelta(hours=1)), PEER, CA, None, NOW
        )
    with pytest.raises(OcspError, match="too old"):
        check_response(
            response(PEER, CA, CA_KEY, this_update=NOW - dt.timedelta(hours=1), next_update=None),
            PEER,
            CA,
            None,
            NOW,
        )
    fresh = check_response(response(PEER, CA, CA_KEY, next_update=None), PEER, CA, None, NOW)
    assert fresh.next_update is None
    with pytest.raises(OcspError, match="nonce"):
        check_response(response(PEER, CA, CA_KEY, nonce=b"x" * 16), PEER, CA, NONCE, NOW)
    # no nonce in the answer: accepted (pre-signed responses carry none)
    assert check_response(response(PEER, CA, CA_KEY), PEER, CA, NONCE, NOW).status == "good"


def test_not_our_certificate_and_garbage() -> None:
    other = build_cert(name("other"), make_key("ecdsa", 45), name("ocsp CA"), CA_KEY)
    with pytest.raises(OcspError, match="no answer for this certificate"):
        check_response(response(other, CA, CA_KEY), PEER, CA, None, NOW)
    with pytest.raises(OcspError, match="not an OCSP response"):
        check_response(b"\x30\x03\x0a\x01\x00junk", PEER, CA, None, NOW)
    unauthorized = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    with pytest.raises(OcspError, match="unauthorized"):
        check_response(unauthorized.public_bytes(serialization.Encoding.DER), PEER, CA, None, NOW)


def test_aia_urls() -> None:
    assert aia_urls(PEER) == ()
    key = make_key("ecdsa", 46)
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier("http://127.0.0.1:2560/"),
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("ldap://x/")
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://ca/")
            ),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("aia"))
        .issuer_name(CA.subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(aia, critical=False)
        .sign(CA_KEY, hashes.SHA256())
    )
    assert aia_urls(cert) == ("http://127.0.0.1:2560/",)
