"""Phase 1 authentication with signatures (RFC 2409 5.1; ECDSA RFC 4754): certificate requests,
our CERT and SIG payloads, and the check of the peer's. A helper the Phase 1 state holds
(DESIGN.md principle 4), over the certificates and keys the loader put in ``Config.credentials``.

When payloads travel, as strongSwan 5.9 (``isakmp_cert_pre.c`` / ``isakmp_cert_post.c``) does:

- CERTREQ (one per trusted CA, its subject DN; RFC 2408 3.10) in MM3 (initiator), MM4 (responder),
  AM1 and AM2, unless ``send_certreq = false``; CERTREQs are accepted in any message;
- our CERT (X.509 signature, encoding 4) before SIG in MM5 / MM6 / AM2 / AM3 when
  ``send_cert = "always"``, or ``"ifasked"`` (the default) and the peer sent a CERTREQ before.

The peer's end-entity certificate is the first X.509 CERT it sent (further ones are intermediate
CAs), or the one configured in ``remote.certs`` when it sent none; it must chain to a
``remote.cacerts`` CA (or be a pinned ``remote.certs`` certificate), be valid at the wall-clock
time, contain the peer's ID (subject DN or subjectAltName) and hold the key of the negotiated
method. Each failure is an AuthenticationError with the Notify RFC 2408 section 5 names for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from snakeswan.config.credentials import Credentials, cert_contains, public_key_of
from snakeswan.config.identity import Identity
from snakeswan.config.model import ConnectionConfig
from snakeswan.crypto import signatures
from snakeswan.crypto.certs import CertError, check_revocation, parse_certificate, validate_chain
from snakeswan.errors import AuthenticationError, CryptoError, PeerError
from snakeswan.ike import revocation
from snakeswan.ike.context import Context
from snakeswan.ike.revocation import OcspQuery
from snakeswan.wire.enums import AuthMethod, CertEncoding, NotifyType, name_of
from snakeswan.wire.message import Message
from snakeswan.wire.payloads import CertPayload, CertRequestPayload, Payload, SigPayload

PUBKEY_AUTH = ("pubkey", "rsa", "ecdsa")
N = NotifyType


def is_pubkey(method: str) -> bool:
    return method in PUBKEY_AUTH


def local_method(conn: ConnectionConfig, creds: Credentials) -> int:
    """The auth method our key signs with (strongSwan's ``get_pubkey_method``: RSA 3, ECDSA 9/10/11)."""
    if not conn.local.certs:
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"connection {conn.name}: pubkey auth without local.certs")
    try:
        cert = creds.cert(conn.local.certs[0])
    except KeyError:
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"certificate {conn.local.certs[0]!r} not loaded") from None
    key = creds.key_for(cert)
    if key is None:
        raise PeerError(N.NO_PROPOSAL_CHOSEN, f"no private key for {conn.local.certs[0]!r}")
    return signatures.auth_method_for(key.key)


class PubkeyAuth:
    """CERTREQ/CERT/SIG of one phase 1 exchange."""

    def __init__(self, ctx: Context, unique_id: int) -> None:
        self.ctx = ctx
        self.unique_id = unique_id
        self.certreq_seen = False
        self.peer_cert: x509.Certificate | None = None
        self.ocsp: OcspQuery | None = None  # to ask once phase 1 is up (ike/revocation.py)

    @property
    def creds(self) -> Credentials:
        return self.ctx.config.credentials

    def _trusted(self, conn: ConnectionConfig) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        """(CA certificates, pinned peer certificates) of the connection's remote side."""
        cas = [self.creds.cert(n) for n in conn.remote.cacerts]
        pinned = [self.creds.cert(n) for n in conn.remote.certs]
        return cas, pinned

    # ---- what we send -------------------------------------------------------------------------

    def certreqs(self, conn: ConnectionConfig) -> list[CertRequestPayload]:
        """CERTREQs naming the CAs we trust for the peer (for a pinned certificate: its issuer)."""
        if not conn.send_certreq or not is_pubkey(conn.remote.method):
            return []
        cas, pinned = self._trusted(conn)
        names = [ca.subject for ca in cas] or [c.issuer for c in pinned]
        unique = list(dict.fromkeys(n.public_bytes() for n in names))
        return [CertRequestPayload(CertEncoding.X509_SIGNATURE, dn) for dn in unique]

    def note_certreqs(self, msg: Message) -> None:
        crs = msg.all(CertRequestPayload)
        if crs:
            self.certreq_seen = True
            self.ctx.tracer.emit(
                "ike",
                "certreq_received",
                sa=self.unique_id,
                encodings=[name_of(CertEncoding, c.encoding) for c in crs],
            )

    def our_payloads(self, conn: ConnectionConfig, signed: bytes) -> list[Payload]:
        """[CERT,] SIG over ``signed`` (HASH_I or HASH_R)."""
        cert = self.creds.cert(conn.local.certs[0])
        key = self.creds.key_for(cert)
        if key is None:  # the loader checks this; a Config built in code may not
            raise PeerError(N.AUTHENTICATION_FAILED, f"no private key for {conn.local.certs[0]!r}")
        payloads: list[Payload] = []
        if conn.send_cert == "always" or (conn.send_cert == "ifasked" and self.certreq_seen):
            for name in conn.local.certs:  # ours, then the intermediate CAs that issued it
                der = self.creds.cert(name).public_bytes(serialization.Encoding.DER)
                payloads.append(CertPayload(CertEncoding.X509_SIGNATURE, der))
        payloads.append(SigPayload(signatures.sign(key.key, signed)))
        return payloads

    # ---- what we check --------------------------------------------------------------------------

    def _received_certs(self, msg: Message) -> list[x509.Certificate]:
        certs = []
        for p in msg.all(CertPayload):
            if p.encoding != CertEncoding.X509_SIGNATURE:
                self.ctx.tracer.emit(
                    "ike", "cert_ignored", sa=self.unique_id, encoding=name_of(CertEncoding, p.encoding)
                )
                continue
            try:
                certs.append(parse_certificate(p.data))
            except CertError as e:
                raise AuthenticationError(N.INVALID_CERTIFICATE, f"peer's CERT payload: {e.what}") from None
        return certs

    def _end_entity(
        self, conn: ConnectionConfig, msg: Message
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        received = self._received_certs(msg)
        _, pinned = self._trusted(conn)
        if received:
            if pinned and received[0] not in pinned:
                raise AuthenticationError(
                    N.INVALID_CERTIFICATE, "not the certificate configured in remote.certs"
                )
            return received[0], received[1:]
        if pinned:
            return pinned[0], []
        raise AuthenticationError(
            N.CERTIFICATE_UNAVAILABLE, "peer sent no certificate and none is configured"
        )

    def verify(
        self, conn: ConnectionConfig, msg: Message, peer_id: Identity, signed: bytes, method: int, now: float
    ) -> None:
        """The peer's SIG over ``signed`` (its HASH_I or HASH_R), by the key of its certificate, which
        must be of the negotiated auth ``method``; ``now`` is engine time (+ ``ctx.wall_offset``)."""
        sig = msg.first(SigPayload)
        if sig is None:
            raise PeerError(N.PAYLOAD_MALFORMED, "SIG payload missing")
        if self.ctx.wall_offset is None:
            raise AuthenticationError(N.INVALID_CERTIFICATE, "no wall-clock time to check certificates by")
        when = datetime.fromtimestamp(now + self.ctx.wall_offset, UTC)
        cert, intermediates = self._end_entity(conn, msg)
        cas, pinned = self._trusted(conn)
        if not cas and not pinned:
            raise AuthenticationError(N.INVALID_CERT_AUTHORITY, "no trusted CA (remote.cacerts) configured")
        try:
            path = validate_chain(cert, intermediates, [*cas, *pinned], when)
            check_revocation(path, [self.creds.crl(n) for n in conn.remote.crls], when)
            ocsp = revocation.assess(self.ctx, conn, path, when)
            public = public_key_of(cert)
        except CertError as e:
            notify = N.INVALID_CERT_AUTHORITY if e.untrusted else N.INVALID_CERTIFICATE
            what = f'certificate path check of "{cert.subject.rfc4514_string()}" failed: {e.what}'
            raise AuthenticationError(notify, what) from None
        subject = cert.subject.rfc4514_string()
        if not cert_contains(cert, peer_id):
            raise AuthenticationError(
                N.INVALID_ID_INFORMATION, f'peer identity {peer_id} is not in its certificate "{subject}"'
            )
        _check_method(public, method)
        if not signatures.verify(public, signed, sig.data):
            raise AuthenticationError(N.INVALID_SIGNATURE, f'signature by "{subject}" does not verify')
        self.peer_cert = cert
        self.ocsp = ocsp
        self.ctx.tracer.emit(
            "ike",
            "peer_authenticated",
            sa=self.unique_id,
            subject=subject,
            issuer=path[-1].subject.rfc4514_string(),
            key=signatures.key_description(public),
        )


def _check_method(public: signatures.PublicKeyType, method: int) -> None:
    """The key must be of the negotiated kind (RSA for 3; the method's curve for ECDSA)."""
    try:
        theirs = signatures.auth_method_for(public)
    except CryptoError as e:
        raise AuthenticationError(N.INVALID_KEY_INFORMATION, str(e)) from None
    if theirs != method:
        raise AuthenticationError(
            N.INVALID_KEY_INFORMATION,
            f"peer's {signatures.key_description(public)} key does not fit auth method "
            f"{name_of(AuthMethod, method)}",
        )
